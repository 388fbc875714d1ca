// photo3d preview page: renders the server's LDI in WebGL2 at display rate.
//
// Conventions match the server renderer (ARCHITECTURE.md): OpenCV camera (x right, y down,
// z forward), pixel centres at integer + 0.5, poses are camera-to-world 4x4 (row-major in
// JSON), intrinsics K in pixels of the image they describe, scaled to the canvas the way
// scene.scale_intrinsics does. Poses of a path come from the server (/api/poses), so the
// motion shown is the motion exported. Without WebGL2 (or with ?mode=server) frames are
// rendered by the server and streamed over a WebSocket.
//
// window.preview exposes the state for tests and benchmarks: ready, mode, frames,
// frameTimes (ms between displayed frames), drawTimes (ms to draw; with ?measure=1 they
// include a GPU sync), error.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const preview = (window.preview = {
  ready: false, mode: null, frames: 0, frameTimes: [], drawTimes: [], error: null, pose: null,
  stats() {
    const med = (a) => { if (!a.length) return null; const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
    const p90 = (a) => { if (!a.length) return null; const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length * 0.9)]; };
    return { frames: this.frames, frame_ms: med(this.frameTimes), frame_p90_ms: p90(this.frameTimes),
             draw_ms: med(this.drawTimes), draw_p90_ms: p90(this.drawTimes), mode: this.mode };
  },
});
const MAX_SAMPLES = 240;
const push = (a, v) => { a.push(v); if (a.length > MAX_SAMPLES) a.shift(); };

// ---- small linear algebra (row-major 4x4 / 3x3 as flat arrays) ----------------------------
function lookAt(p, target) { // camera-to-world rotation, world up = -y (paths.look_at)
  const f = [target[0] - p[0], target[1] - p[1], target[2] - p[2]];
  const n = Math.hypot(...f);
  if (n < 1e-12) return [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const z = f.map((v) => v / n);
  let x = [z[1] * 0 - z[2] * -1, z[2] * 0 - z[0] * 0, z[0] * -1 - z[1] * 0]; // z x (0,-1,0)
  let xn = Math.hypot(...x);
  if (xn < 1e-9) { x = [1, 0, 0]; xn = 1; }
  x = x.map((v) => v / xn);
  const y = [z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]];
  return [x[0], y[0], z[0], x[1], y[1], z[1], x[2], y[2], z[2]]; // columns x, y, z
}
function poseFrom(R, t) { return [R[0], R[1], R[2], t[0], R[3], R[4], R[5], t[1], R[6], R[7], R[8], t[2], 0, 0, 0, 1]; }
function worldToCamera(c2w) { // inverse of a rigid [R | t]: [R^T | -R^T t]
  const R = [c2w[0], c2w[1], c2w[2], c2w[4], c2w[5], c2w[6], c2w[8], c2w[9], c2w[10]];
  const t = [c2w[3], c2w[7], c2w[11]];
  const Rt = [R[0], R[3], R[6], R[1], R[4], R[7], R[2], R[5], R[8]];
  const ti = [0, 1, 2].map((i) => -(Rt[3 * i] * t[0] + Rt[3 * i + 1] * t[1] + Rt[3 * i + 2] * t[2]));
  return poseFrom(Rt, ti);
}
function colMajor4(m) { const o = new Float32Array(16); for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) o[c * 4 + r] = m[r * 4 + c]; return o; }
function inv3(K) { // K = [[fx,0,cx],[0,fy,cy],[0,0,1]] (row-major) -> inverse, column-major for GLSL
  const [fx, , cx, , fy, cy] = [K[0][0], 0, K[0][2], 0, K[1][1], K[1][2]];
  return new Float32Array([1 / fx, 0, 0, 0, 1 / fy, 0, -cx / fx, -cy / fy, 1]);
}
// scene.zoom_intrinsics / scale_intrinsics: scale s about the image centre, centre moved src -> dst
function rescaleK(K, s, src, dst) {
  return [[K[0][0] * s, 0, dst[0] * 0.5 + (K[0][2] - src[0] * 0.5) * s],
          [0, K[1][1] * s, dst[1] * 0.5 + (K[1][2] - src[1] * 0.5) * s], [0, 0, 1]];
}
const scaleK = (K, src, dst) => rescaleK(K, Math.max(dst[0] / src[0], dst[1] / src[1]), src, dst);

// ---- server I/O ---------------------------------------------------------------------------
async function api(url, init) {
  const r = await fetch(url, init);
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}
function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  if (isError) preview.error = text;
}

// ---- state ----------------------------------------------------------------------------------
const state = { info: null, image: null, scene: null, poses: null, playing: true, t0: performance.now(),
                drag: null, dragPos: [0, 0], useDrag: false, job: null };

function options() {
  const o = { path: $("path").value, amount: +$("amount").value, duration: +$("duration").value,
              fps: +$("fps").value, overscan: $("overscan").value === "true", depth: $("depth").value };
  if ($("fov").value !== "") o.fov = +$("fov").value;
  if ($("size").value) o.size = $("size").value;
  return o;
}
function setOptions(o) {
  if (o.path) $("path").value = o.path;
  if (o.amount != null) $("amount").value = o.amount;
  $("amount-out").textContent = $("amount").value;
  if (o.duration != null) $("duration").value = o.duration;
  if (o.fps != null) $("fps").value = o.fps;
  $("fov").value = o.fov != null ? o.fov : "";
  if (o.overscan != null) $("overscan").value = String(o.overscan);
  if (o.depth) $("depth").value = o.depth;
  $("size").value = o.size || "";
}
function sceneQuery() {
  const q = new URLSearchParams({ image: state.image, depth: $("depth").value });
  if ($("fov").value !== "") q.set("fov", $("fov").value);
  return q;
}
function commandLine() {
  const o = options();
  let c = `photo3d render ${state.image} --path ${o.path} --amount ${o.amount} --duration ${o.duration} --fps ${o.fps}`;
  if (o.fov != null) c += ` --fov ${o.fov}`;
  if (o.size) c += ` --size ${o.size}`;
  if (!o.overscan) c += " --no-overscan";
  if (o.depth !== "auto") c += ` --depth ${o.depth}`;
  $("command").textContent = c;
}

// ---- the camera of the current instant ------------------------------------------------------
function currentCamera(now) {
  const P = state.poses;
  if (!P) return null;
  let c2w, zoom;
  if (state.useDrag) {
    const s = state.scene;
    const r = s.base_radius * Math.max(+$("amount").value, 0.1) * s.near;
    const p = [r * state.dragPos[0], r * state.dragPos[1], 0];
    c2w = poseFrom(lookAt(p, [0, 0, s.focus]), p);
    zoom = P.overscan;
  } else {
    const n = P.n;
    // rAF's timestamp may precede a t0 set since the frame began: clamp, then wrap
    const i = state.playing ? Math.floor(Math.max(0, now - state.t0) / 1000 * P.fps) % n : Math.min(state.frozen || 0, n - 1);
    state.frozen = i;
    c2w = P.poses[i]; zoom = P.zoom[i];
  }
  const size = P.size;
  const Kf = rescaleK(P.K, zoom, size, size);
  return { c2w, Kf, size };
}

// ---- WebGL2 renderer ------------------------------------------------------------------------
const VS = `#version 300 es
precision highp float;
uniform highp sampler2D uDisp;
uniform mediump sampler2D uColor;
uniform int uW;
uniform mat3 uKinvGrid;
uniform mat4 uW2C;
uniform vec4 uK;        // fx, fy, cx, cy of the canvas (pixels)
uniform vec2 uSize;     // canvas width, height (pixels)
uniform vec2 uNearFar;
uniform bool uFill;     // the uncut hole-filling sheet: pushed behind everything else
out vec3 vColor;
void main() {
  ivec2 p = ivec2(gl_VertexID % uW, gl_VertexID / uW);
  float d = texelFetch(uDisp, p, 0).r;
  vColor = texelFetch(uColor, p, 0).rgb;
  vec3 X = (uKinvGrid * vec3(float(p.x) + 0.5, float(p.y) + 0.5, 1.0)) / max(d, 1e-12);
  vec3 c = (uW2C * vec4(X, 1.0)).xyz;
  float u = uK.x * c.x / c.z + uK.z;    // OpenCV pixel coordinates, centres at +0.5
  float v = uK.y * c.y / c.z + uK.w;
  float n = uNearFar.x, f = uNearFar.y;
  gl_Position = vec4((2.0 * u / uSize.x - 1.0) * c.z, (1.0 - 2.0 * v / uSize.y) * c.z,
                     (f + n) / (f - n) * c.z - 2.0 * f * n / (f - n), c.z);
  if (uFill) gl_Position.z = 0.999999 * gl_Position.w;
}`;
const FS = `#version 300 es
precision mediump float;
in vec3 vColor;
out vec4 outColor;
void main() { outColor = vec4(vColor, 1.0); }`;

class GLView {
  constructor(canvas, gl) {
    this.canvas = canvas; this.gl = gl; this.layers = [];
    const sh = (type, src) => {
      const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    };
    const prog = gl.createProgram();
    gl.attachShader(prog, sh(gl.VERTEX_SHADER, VS)); gl.attachShader(prog, sh(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    this.prog = prog;
    this.u = {};
    for (const n of ["uDisp", "uColor", "uW", "uKinvGrid", "uW2C", "uK", "uSize", "uNearFar", "uFill"]) this.u[n] = gl.getUniformLocation(prog, n);
    this.vao = gl.createVertexArray();
  }
  texture(internal, format, type, w, h, data) {
    const gl = this.gl, t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, t);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, w, h, 0, format, type, data);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    return t;
  }
  // One layer k as its surface (ldi.LDI.surfaces): disparity and rgba of layer k where it is
  // valid, else of surface k-1, so a back layer's mesh joins the background it was grown
  // from and closes the gap behind every cut silhouette. A triangle is drawn when one of
  // its corners is in layer k and no edge of it jumps by more than the LDI's edge
  // threshold in disparity (the renderer's "same surface" links); layer 0 is all valid.
  addLayer(w, h, disp, rgba, valid, edge) {
    const gl = this.gl;
    const idx = new Uint32Array((w - 1) * (h - 1) * 6);
    let n = 0;
    const ok = (a, b) => Math.abs(disp[a] - disp[b]) <= edge;
    for (let y = 0; y < h - 1; y++) {
      for (let x = 0; x < w - 1; x++) {
        const a = y * w + x, b = a + 1, c = a + w, d = c + 1;
        const diag = ok(b, c);
        if ((valid[a] || valid[b] || valid[c]) && diag && ok(a, b) && ok(a, c)) { idx[n++] = a; idx[n++] = c; idx[n++] = b; }
        if ((valid[b] || valid[c] || valid[d]) && diag && ok(b, d) && ok(c, d)) { idx[n++] = b; idx[n++] = c; idx[n++] = d; }
      }
    }
    const ibo = this.indices(idx.subarray(0, n));
    if (!this.layers.length) { // layer 0 uncut: stretched over every gap, drawn behind all (a
      // stand-in for the renderer's hole filling, so a disocclusion wider than the back
      // layer shows smeared surroundings instead of the clear colour)
      let m = 0;
      for (let y = 0; y < h - 1; y++) for (let x = 0; x < w - 1; x++) {
        const a = y * w + x, b = a + 1, c = a + w, d = c + 1;
        idx[m++] = a; idx[m++] = c; idx[m++] = b; idx[m++] = b; idx[m++] = c; idx[m++] = d;
      }
      this.fill = { ibo: this.indices(idx.subarray(0, m)), n: m };
    }
    this.layers.push({ w, h, n, ibo,
      disp: this.texture(gl.R32F, gl.RED, gl.FLOAT, w, h, disp),
      color: this.texture(gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, w, h, rgba) });
  }
  indices(data) {
    const gl = this.gl, ibo = gl.createBuffer();
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ibo);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, data, gl.STATIC_DRAW);
    gl.bindVertexArray(null);
    return ibo;
  }
  clear() {
    const gl = this.gl;
    if (this.fill) { gl.deleteBuffer(this.fill.ibo); this.fill = null; }
    for (const l of this.layers) { gl.deleteBuffer(l.ibo); gl.deleteTexture(l.disp); gl.deleteTexture(l.color); }
    this.layers = [];
  }
  draw(cam, scene) {
    const gl = this.gl, cv = this.canvas;
    const Kc = scaleK(cam.Kf, cam.size, [cv.width, cv.height]);
    preview.K = Kc; preview.canvasSize = [cv.width, cv.height];
    gl.viewport(0, 0, cv.width, cv.height);
    gl.clearColor(0.08, 0.08, 0.09, 1); gl.clearDepth(1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST); gl.depthFunc(gl.LEQUAL);
    gl.useProgram(this.prog);
    gl.uniform1i(this.u.uDisp, 0); gl.uniform1i(this.u.uColor, 1);
    gl.uniformMatrix3fv(this.u.uKinvGrid, false, inv3(scene.K));
    gl.uniformMatrix4fv(this.u.uW2C, false, colMajor4(worldToCamera(cam.c2w)));
    gl.uniform4f(this.u.uK, Kc[0][0], Kc[1][1], Kc[0][2], Kc[1][2]);
    gl.uniform2f(this.u.uSize, cv.width, cv.height);
    gl.uniform2f(this.u.uNearFar, 0.2 / scene.disparity_max, 20.0 / scene.disparity_min);
    gl.bindVertexArray(this.vao);
    const passes = this.fill ? [[this.layers[0], this.fill, true]] : [];
    for (const l of this.layers) passes.push([l, l, false]);
    for (const [l, mesh, fill] of passes) {
      gl.uniform1i(this.u.uW, l.w);
      gl.uniform1i(this.u.uFill, fill ? 1 : 0);
      gl.activeTexture(gl.TEXTURE0); gl.bindTexture(gl.TEXTURE_2D, l.disp);
      gl.activeTexture(gl.TEXTURE1); gl.bindTexture(gl.TEXTURE_2D, l.color);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, mesh.ibo);
      gl.drawElements(gl.TRIANGLES, mesh.n, gl.UNSIGNED_INT, 0);
    }
    gl.bindVertexArray(null);
    if (params.get("measure") === "1") gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  }
}

async function loadLayers(view, scene) {
  const q = sceneQuery();
  const { width: w, height: h } = scene;
  const lo = scene.disparity_min, span = scene.disparity_max - scene.disparity_min;
  let surf = null;
  for (let k = 0; k < scene.layers; k++) {
    const [colorResp, depthResp] = await Promise.all([
      api(`/api/layer?${q}&k=${k}&kind=color`), api(`/api/layer?${q}&k=${k}&kind=depth&format=raw`)]);
    const bmp = await createImageBitmap(await colorResp.blob(), { premultiplyAlpha: "none", colorSpaceConversion: "none" });
    const c2d = new OffscreenCanvas(w, h).getContext("2d");
    c2d.drawImage(bmp, 0, 0);
    const rgba = new Uint8Array(c2d.getImageData(0, 0, w, h).data.buffer);
    const raw = new Uint16Array(await depthResp.arrayBuffer());
    const valid = new Uint8Array(w * h);
    if (!surf) surf = { disp: new Float32Array(w * h), rgba: new Uint8Array(w * h * 4) };
    else surf = { disp: surf.disp.slice(), rgba: surf.rgba.slice() };
    for (let i = 0; i < w * h; i++) {
      if (!raw[i]) continue;
      valid[i] = 1;
      surf.disp[i] = lo + ((raw[i] - 1) / 65534) * span;
      for (let c = 0; c < 4; c++) surf.rgba[4 * i + c] = rgba[4 * i + c];
    }
    view.addLayer(w, h, surf.disp, surf.rgba, valid, scene.edge_disparity);
  }
}

// ---- server-side frames (no WebGL2) ---------------------------------------------------------
class StreamView {
  constructor(img) {
    this.img = img; this.busy = false; this.sent = 0;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${proto}//${location.host}/api/stream`);
    this.ws.binaryType = "blob";
    this.open = new Promise((res, rej) => { this.ws.onopen = res; this.ws.onerror = () => rej(new Error("WebSocket failed")); });
    this.ws.onmessage = (ev) => {
      this.busy = false;
      if (typeof ev.data === "string") { status(JSON.parse(ev.data).error || ev.data, true); return; }
      const url = URL.createObjectURL(ev.data);
      this.img.onload = () => URL.revokeObjectURL(url);
      this.img.src = url;
      push(preview.drawTimes, performance.now() - this.sent);
      frameDone();
    };
  }
  request(cam, scene, size) {
    if (this.busy || this.ws.readyState !== 1) return;
    const Kc = scaleK(cam.Kf, cam.size, size);
    this.busy = true; this.sent = performance.now();
    const q = sceneQuery();
    this.ws.send(JSON.stringify({ image: state.image, depth: q.get("depth"), fov: q.get("fov"),
      c2w: cam.c2w, K: Kc.flat(), width: size[0], height: size[1] }));
  }
}

// ---- main loop --------------------------------------------------------------------------------
let view = null, stream = null, lastFrame = 0;
function frameDone() {
  const now = performance.now();
  if (lastFrame) push(preview.frameTimes, now - lastFrame);
  lastFrame = now;
  preview.frames++;
  if (now - (frameDone.shown || 0) > 250) { // a readout 4 times a second, whatever the rate
    frameDone.shown = now;
    const s = preview.stats();
    $("readout").textContent = `${preview.mode}  frame ${s.frame_ms?.toFixed(1)} ms (p90 ${s.frame_p90_ms?.toFixed(1)})` +
      `  ${preview.mode === "webgl2" ? "draw" : "server"} ${s.draw_ms?.toFixed(1)} ms`;
  }
}
function canvasSize() {
  const P = state.poses, stage = $("stage");
  const cssW = Math.min(stage.clientWidth || 960, 1280);
  const aspect = P.size[1] / P.size[0];
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  let w = Math.round(cssW * dpr), h = Math.round(cssW * aspect * dpr);
  const maxH = Math.round((window.innerHeight - 40) * dpr);
  if (h > maxH) { w = Math.round(w * maxH / h); h = maxH; }
  return [Math.max(16, w), Math.max(16, h)];
}
function tick(now) {
  requestAnimationFrame(tick);
  if (!state.scene || !state.poses) return;
  const cam = currentCamera(now);
  preview.pose = cam.c2w;
  if (view) {
    const [w, h] = canvasSize();
    const cv = $("gl");
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
    const t = performance.now();
    view.draw(cam, state.scene);
    push(preview.drawTimes, performance.now() - t);
    frameDone();
  } else if (stream) {
    let [w, h] = canvasSize();
    const s = Math.min(1, 960 / Math.max(w, h));   // the link, not the screen, is the limit here
    stream.request(cam, state.scene, [Math.round(w * s), Math.round(h * s)]);
  }
}

async function loadPoses() {
  const q = new URLSearchParams({ image: state.image });
  for (const [k, v] of Object.entries(options())) q.set(k, v);
  try {
    state.poses = await (await api(`/api/poses?${q}`)).json();
    state.t0 = performance.now();
    commandLine();
    status("");
  } catch (e) { status(e.message, true); }
}
async function loadScene() {
  preview.ready = false;
  status("computing depth and the layered depth image…");
  try {
    const scene = await (await api(`/api/scene?${sceneQuery()}`)).json();
    if (view) { view.clear(); await loadLayers(view, scene); }
    state.scene = scene;
    await loadPoses();
    if (!preview.error) status(`${scene.width}x${scene.height} LDI, ${scene.layers} layers; ${scene.notes}`);
    preview.ready = true;
    document.title = "photo3d preview — ready";
  } catch (e) { status(e.message, true); document.title = "photo3d preview — error"; }
}

let debounce = null;
function onChange(ev) {
  $("amount-out").textContent = $("amount").value;
  clearTimeout(debounce);
  const reloadScene = ev && (ev.target.id === "fov" || ev.target.id === "depth");
  debounce = setTimeout(() => (reloadScene ? loadScene() : loadPoses()), 150);
}

function setupDrag(el) {
  el.addEventListener("pointerdown", (e) => {
    el.setPointerCapture(e.pointerId); el.classList.add("dragging");
    state.drag = { x: e.clientX, y: e.clientY, start: [...state.dragPos] };
    state.useDrag = true;
  });
  el.addEventListener("pointermove", (e) => {
    if (!state.drag) return;
    const r = el.getBoundingClientRect();
    const clamp = (v) => Math.max(-1, Math.min(1, v));
    state.dragPos = [clamp(state.drag.start[0] + (2 * (e.clientX - state.drag.x)) / r.width),
                     clamp(state.drag.start[1] + (2 * (e.clientY - state.drag.y)) / r.height)];
  });
  const up = () => { state.drag = null; el.classList.remove("dragging"); };
  el.addEventListener("pointerup", up); el.addEventListener("pointercancel", up);
  el.addEventListener("dblclick", () => { state.useDrag = false; state.dragPos = [0, 0]; state.playing = true; state.t0 = performance.now(); $("play").textContent = "Pause"; });
}
function setupTilt() {
  const onTilt = (e) => {
    if (!$("tilt").checked || e.gamma == null) return;
    state.useDrag = true;
    state.dragPos = [Math.max(-1, Math.min(1, e.gamma / 30)), Math.max(-1, Math.min(1, (e.beta - 45) / 30))];
  };
  $("tilt").addEventListener("change", async () => {
    if ($("tilt").checked && typeof DeviceOrientationEvent !== "undefined" && DeviceOrientationEvent.requestPermission) {
      try { await DeviceOrientationEvent.requestPermission(); } catch (e) { status("device tilt not permitted", true); }
    }
    if (!$("tilt").checked) state.useDrag = false;
  });
  window.addEventListener("deviceorientation", onTilt);
}

async function exportClip() {
  $("download").hidden = true;
  $("progress").hidden = false; $("progress").value = 0;
  try {
    const body = JSON.stringify({ image: state.image, options: options() });
    let job = await (await api("/api/export", { method: "POST", headers: { "Content-Type": "application/json" }, body })).json();
    status(`export ${job.id}: ${job.state}`);
    while (job.state === "queued" || job.state === "running") {
      await new Promise((r) => setTimeout(r, 500));
      job = await (await api(`/api/jobs/${job.id}`)).json();
      $("progress").value = job.progress;
      status(`export ${job.id}: ${job.state} ${job.done}/${job.total} frames`);
    }
    if (job.state === "error") throw new Error(`export failed: ${job.error}`);
    $("download").href = job.download; $("download").hidden = false;
    status(`export ${job.id}: done, ${job.total} frames`);
  } catch (e) { status(e.message, true); }
}
async function saveSettings() {
  try {
    const body = JSON.stringify({ image: state.image, options: options() });
    await api("/api/settings", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    status(`saved settings of ${state.image} to ${state.info.manifest}`);
  } catch (e) { status(e.message, true); }
}
async function selectPhoto(image) {
  state.image = image;
  if (state.info.mode === "folder") {
    try {
      const row = await (await api(`/api/settings?image=${encodeURIComponent(image)}`)).json();
      if (row.image) setOptions(row);
    } catch (e) { status(e.message, true); }
  }
  await loadScene();
}

async function main() {
  try {
    state.info = await (await api("/api/info")).json();
  } catch (e) { status(`cannot reach the preview server: ${e.message}`, true); return; }
  const info = state.info;
  for (const p of info.presets) $("path").add(new Option(p, p));
  for (const d of info.depth_models) $("depth").add(new Option(d, d));
  for (const p of info.photos) $("photo").add(new Option(p, p));
  if (info.mode === "folder") { $("photo-row").hidden = false; $("save").hidden = false; }
  for (const id of ["path", "amount", "duration", "fps", "fov", "overscan", "depth", "size"]) $(id).addEventListener("change", onChange);
  $("amount").addEventListener("input", () => { $("amount-out").textContent = $("amount").value; });
  $("photo").addEventListener("change", () => selectPhoto($("photo").value));
  $("play").addEventListener("click", () => {
    state.playing = !state.playing; state.useDrag = false;
    if (state.playing) state.t0 = performance.now() - ((state.frozen || 0) / (state.poses?.fps || 30)) * 1000;
    $("play").textContent = state.playing ? "Pause" : "Play";
  });
  $("export").addEventListener("click", exportClip);
  $("save").addEventListener("click", saveSettings);

  const want = params.get("mode");
  const gl = want === "server" ? null : $("gl").getContext("webgl2", { antialias: false, preserveDrawingBuffer: true });
  if (gl) {
    try { view = new GLView($("gl"), gl); preview.mode = "webgl2"; } catch (e) { status(`WebGL2 failed (${e.message}); using server frames`, true); }
  }
  if (!view) {
    preview.mode = "server";
    $("gl").hidden = true; $("frame").hidden = false;
    stream = new StreamView($("frame"));
    setupDrag($("frame"));
    try { await stream.open; } catch (e) { status(e.message, true); return; }
  } else {
    setupDrag($("gl"));
  }
  setupTilt();
  requestAnimationFrame(tick);
  await selectPhoto(info.photos[0]);
}
main();
