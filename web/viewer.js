// Boots the twinscene viewer on this page: asks the server what to show, loads the wasm
// bundle, and mirrors the viewer's published state (window.twinscene) into the status line.
const status = document.getElementById("twinscene-status");

function showStatus() {
  const state = window.twinscene;
  if (state) {
    status.dataset.state = state.state;
    status.dataset.live = state.live;
    if (state.state === "failed") {
      status.textContent = `Cannot show the scene: ${state.error}`;
    } else if (state.state !== "ready") {
      status.textContent = `Loading ${state.stage ?? "scene"}…`;
    } else {
      const elements = Object.keys(state.elements).length;
      const live = state.live === "live" ? `live, seq ${state.seq}` : state.live;
      status.textContent = `${elements} elements · ${live}`;
    }
  }
  requestAnimationFrame(showStatus);
}

async function boot() {
  const params = new URLSearchParams(location.search);
  const config = await fetch("/api/config").then((r) => (r.ok ? r.json() : {}), () => ({}));
  const scene = params.get("scene") ?? config.scene ?? "/api/scene";
  const live = params.get("live") ?? config.live ?? "/live";
  const liveUrl = live === "off" ? "" : new URL(live, location.href).href.replace(/^http/, "ws");
  status.textContent = "Loading viewer (wasm)…";
  const viewer = await import("/pkg/twinscene_viewer.js");
  await viewer.default();
  requestAnimationFrame(showStatus);
  viewer.start("#twinscene-canvas", new URL(scene, location.href).href, liveUrl);
}

boot().catch((error) => {
  status.dataset.state = "failed";
  status.textContent = `Cannot start the viewer: ${error}`;
  console.error(error);
});
