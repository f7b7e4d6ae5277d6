// Live parts of a page: every element with data-refresh="/fragments/..." is fetched again every
// data-every milliseconds and its content swapped in (what HTMX's hx-trigger="every 2s" does).
// A 401 means the token cookie has gone: back to the sign-in page.
(function () {
  function refresh(element) {
    var every = parseInt(element.getAttribute("data-every") || "3000", 10);
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(element.getAttribute("data-refresh"), { credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) { if (html !== null) { element.innerHTML = html; element.dataset.refreshed = Date.now(); } })
        .catch(function () { /* the service is restarting: try again at the next tick */ })
        .finally(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
  });
})();
