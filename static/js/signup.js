/*
 * Signup page, progressive enhancement only: without this script every field shows.
 *
 * - The postal-address fieldset is hidden until a "by postal mail" box is ticked, and
 *   follows the boxes live. It stays visible when one of its fields has an error.
 * - When the form comes back with errors, the error summary takes focus so keyboard and
 *   screen-reader users start from the list of what to fix.
 */
(function () {
  "use strict";

  var address = document.getElementById("postal-address");
  // crispy puts data-channel on the <input>; wrapper_class lands on its wrapping div.
  var postalBoxes = Array.prototype.slice.call(
    document.querySelectorAll('.consent-choice input[type="checkbox"][data-channel="postal"]')
  );

  if (address && postalBoxes.length) {
    var hasErrors = function () {
      return address.querySelector(".is-invalid, .invalid-feedback") !== null;
    };
    var update = function () {
      var wanted = postalBoxes.some(function (box) {
        return box.checked;
      });
      address.hidden = !(wanted || hasErrors());
    };
    postalBoxes.forEach(function (box) {
      box.setAttribute("aria-controls", "postal-address");
      box.addEventListener("change", update);
    });
    // Browsers may restore ticked boxes on "back" after this script ran.
    window.addEventListener("pageshow", update);
    update();
  } else if (address && !postalBoxes.length) {
    // Nothing offered by post: the address is never needed.
    address.hidden = true;
  }

  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
})();
