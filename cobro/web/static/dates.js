// Date fields: the browser's native date picker (its own order), and beside each one the
// chosen date written as the page's language writes it (<html lang>), so "05/01/2026" can
// never be read as the 1st of May by a Spanish or French collector.
(function () {
  const lang = document.documentElement.lang || "en";
  const format = new Intl.DateTimeFormat(lang, { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
  document.querySelectorAll('input[type="date"]').forEach((input) => {
    input.lang = lang;
    const shown = document.createElement("output");
    shown.className = "date-shown muted";
    shown.htmlFor = input.name;
    input.after(shown);
    const update = () => { shown.textContent = input.value ? " " + format.format(new Date(input.value + "T00:00:00Z")) : ""; };
    input.addEventListener("input", update);
    update();
  });
})();
