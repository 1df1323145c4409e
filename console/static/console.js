// The console's only script besides htmx: the CSRF header on htmx requests, and live pages.
// (No inline scripts: the Content-Security-Policy allows only scripts served by the app.)
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) event.detail.headers["X-CSRF-Token"] = meta.content;
});

// <section data-live="/console/orders/X/live" hx-get="..." hx-trigger="live-update">:
// the server sends an event when the order's event log grows; the section reloads itself.
function connectLive(root) {
  root.querySelectorAll("[data-live]").forEach((el) => {
    if (el.liveSource) return;
    const source = new EventSource(el.dataset.live);
    el.liveSource = source;
    source.addEventListener("order-event", (msg) => {
      el.dataset.liveSeq = msg.lastEventId || "";
      htmx.trigger(el, "live-update");
    });
  });
}
document.addEventListener("DOMContentLoaded", () => connectLive(document));
document.addEventListener("htmx:load", (event) => connectLive(event.target));
window.addEventListener("pagehide", () => {
  document.querySelectorAll("[data-live]").forEach((el) => el.liveSource && el.liveSource.close());
});
