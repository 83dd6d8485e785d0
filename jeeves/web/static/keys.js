// Keyboard shortcuts for the review page (progressive enhancement: the forms work without this).
// j/k move the selection, y or 1 marks the selected message right, n or 0 marks it wrong.
(function () {
  "use strict";
  var items = Array.prototype.slice.call(document.querySelectorAll("li.item"));
  if (!items.length) return;
  var current = 0;
  var fromHash = location.hash && document.getElementById(location.hash.slice(1));
  if (fromHash && items.indexOf(fromHash) >= 0) current = items.indexOf(fromHash);
  function select(i) {
    items[current].classList.remove("selected");
    current = Math.max(0, Math.min(items.length - 1, i));
    items[current].classList.add("selected");
    items[current].scrollIntoView({block: "nearest"});
  }
  select(current);
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) return;
    var key = event.key, action = null;
    if (key === "j") select(current + 1);
    else if (key === "k") select(current - 1);
    else if (key === "y" || key === "1") action = "right";
    else if (key === "n" || key === "0") action = "wrong";
    else return;
    event.preventDefault();
    if (action) items[current].querySelector('button[data-key="' + action + '"]').click();
  });
  items.forEach(function (item, i) { item.addEventListener("click", function () { select(i); }); });
})();
