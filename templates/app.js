// Small conveniences; every page works without them.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      navigator.clipboard.writeText(source.dataset.secret || source.textContent).then(function () {
        button.textContent = "Copied";
      });
    });
  });
});
