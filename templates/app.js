// Small conveniences; every page works without them. Served as a file of
// the module's own, as the pages' Content-Security-Policy allows no inline
// script.
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: data-copy names the element whose data-secret (or text)
  // is copied. They stay hidden where the clipboard cannot be written.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      var text = source.dataset.secret || source.textContent.trim().replace(/\n+/g, "\n");
      navigator.clipboard.writeText(text).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () {
        button.textContent = "Copy failed: select the text instead";
      });
    });
  });

  // A code field marked data-autosubmit sends its form once it holds a
  // whole 6-digit code, typed, pasted or filled in by the phone. Anything
  // else (a recovery code) waits for the button.
  document.querySelectorAll("input[data-autosubmit]").forEach(function (input) {
    var sent = false;
    input.addEventListener("input", function () {
      if (sent || !/^\d{6}$/.test(input.value.replace(/\s/g, ""))) return;
      if (!input.form.checkValidity()) return;
      sent = true;
      input.form.requestSubmit();
    });
  });
});
