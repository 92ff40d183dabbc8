// The alerts inbox: "select all" ticks every row of the page; the count follows.
(function () {
  const all = document.getElementById("select-all");
  const count = document.getElementById("selected-count");
  const picks = () => Array.from(document.querySelectorAll("input.pick"));
  const update = () => { if (count) count.textContent = picks().filter((p) => p.checked).length; };
  if (all) all.addEventListener("change", () => { picks().forEach((p) => { p.checked = all.checked; }); update(); });
  picks().forEach((p) => p.addEventListener("change", update));
  update();
})();
