// The console's only script besides htmx: the CSRF header on htmx requests, and live pages.
// (No inline scripts: the Content-Security-Policy allows only scripts served by the app.)
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) event.detail.headers["X-CSRF-Token"] = meta.content;
});

// Someone is typing in the live part of a page: a refresh now would throw their text away.
function editing(el) {
  return Array.from(el.querySelectorAll("textarea, input:not([type=hidden]), select")).some(
    (field) =>
      field === document.activeElement ||
      ((field.tagName === "TEXTAREA" || field.type === "text") && field.value.trim() !== "")
  );
}

function staleNotice(el) {
  let notice = el.previousElementSibling;
  if (!notice || !notice.classList.contains("live-stale")) {
    notice = document.createElement("p");
    notice.className = "notice live-stale";
    notice.setAttribute("role", "status");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = el.dataset.liveStaleText || "This order changed: show the new state";
    button.addEventListener("click", () => {
      notice.remove();
      htmx.trigger(el, "live-update");
    });
    notice.appendChild(button);
    el.parentNode.insertBefore(notice, el);
  }
}

// <div data-live="/sse/url" hx-get="/panel/url" hx-trigger="live-update">: the server sends
// an "order-event" whenever the order's event log grows and the element reloads itself,
// unless the user is typing in it (then a notice offers the refresh).
function connectLive(root) {
  root.querySelectorAll("[data-live]").forEach((el) => {
    if (el.liveSource) return;
    const source = new EventSource(el.dataset.live);
    el.liveSource = source;
    source.addEventListener("order-event", (msg) => {
      el.dataset.liveSeq = msg.lastEventId || "";
      if (editing(el)) staleNotice(el);
      else htmx.trigger(el, "live-update");
    });
  });
}
document.addEventListener("DOMContentLoaded", () => connectLive(document));
document.addEventListener("htmx:load", (event) => connectLive(event.target));
window.addEventListener("pagehide", () => {
  document.querySelectorAll("[data-live]").forEach((el) => el.liveSource && el.liveSource.close());
});
