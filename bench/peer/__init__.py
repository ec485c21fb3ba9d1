"""The peer: django-newsletter 1.2.1 in its own venv and tiny project, sending the same
number of personalised text+HTML messages to the same ``smtp-sink`` (``bench.peer.run``)."""
