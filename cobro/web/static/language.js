// The header's language switch: choosing a language submits its form (no button needed;
// without JavaScript the <noscript> button does it). A file, not an onchange attribute: the
// Content-Security-Policy allows no inline script.
(function () {
  const select = document.getElementById("language");
  if (select) select.addEventListener("change", () => select.form.submit());
})();
