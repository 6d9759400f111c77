"use strict";
// The gallery's only script: a filter by state read from the address (#state=failed), so a
// filtered view can be bookmarked and works from file://; and, for each image as it loads, its
// size in data-size, or the class "missing" when it cannot be shown.
(function () {
  function wanted() {
    var match = /^#state=([a-z_]+)$/.exec(location.hash);
    return match ? match[1] : "";
  }
  function applyFilter() {
    var state = wanted(), cards = document.querySelectorAll(".card"), shown = 0;
    for (var i = 0; i < cards.length; i++) {
      var keep = !state || cards[i].dataset.state === state;
      cards[i].hidden = !keep;
      if (keep) shown++;
    }
    var links = document.querySelectorAll(".count");
    for (var j = 0; j < links.length; j++) {
      links[j].setAttribute("aria-current", String(links[j].dataset.filter === state));
    }
    var note = document.getElementById("shown");
    if (note) note.textContent = state ? "showing " + shown + " " + state.replace(/_/g, " ") : "";
    var none = document.getElementById("no-match");
    if (none) none.hidden = shown > 0 || cards.length === 0;
  }
  function imageEvent(event) {
    var image = event.target;
    if (!(image instanceof HTMLImageElement)) return;
    var shot = image.closest(".shot");
    if (event.type === "load" && image.naturalWidth > 0) {
      shot.dataset.size = image.naturalWidth + "×" + image.naturalHeight;
    } else {
      shot.classList.add("missing");
    }
  }
  // load and error do not bubble: listen while they travel down (capture) to every image.
  document.addEventListener("load", imageEvent, true);
  document.addEventListener("error", imageEvent, true);
  document.addEventListener("DOMContentLoaded", applyFilter);
  window.addEventListener("hashchange", applyFilter);
})();
