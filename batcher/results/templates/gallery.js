"use strict";
// The gallery's only script. Filters are links to each state's pages; an old bookmark of the
// one-page gallery (index.html#state=failed) is sent on to that state's first page. And, for
// each image as it loads, its size in data-size, or the class "missing" when it cannot be shown.
(function () {
  function followStateInAddress() {
    var match = /^#state=([a-z_]+)$/.exec(location.hash);
    if (!match) return;
    var link = document.querySelector('.count[data-filter="' + match[1] + '"]');
    if (link && link.getAttribute("href") !== "index.html") location.replace(link.href);
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
  document.addEventListener("DOMContentLoaded", followStateInAddress);
  window.addEventListener("hashchange", followStateInAddress);
})();
