"""Public pages, one module per area; ``subscribers/urls.py`` routes to them."""
