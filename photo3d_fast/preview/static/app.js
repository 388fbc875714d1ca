// photo3d preview page: renders the server's LDI in WebGL2 at display rate, as the
// export's renderer renders it (the op `splat`, below), so what is shown is what exports.
//
// Conventions match the server renderer (docs/architecture.md): OpenCV camera (x right, y down,
// z forward), pixel centres at integer + 0.5, poses are camera-to-world 4x4 (row-major in
// JSON), intrinsics K in pixels of the image they describe, scaled to the canvas the way
// scene.scale_intrinsics does. Poses of a path come from the server (/api/poses), so the
// motion shown is the motion exported. Without WebGL2 and float render targets (or with
// ?mode=server) frames are rendered by the server and streamed over a WebSocket.
//
// window.preview exposes the state for tests and benchmarks: ready, mode, frames,
// frameTimes (ms between displayed frames), drawTimes (ms to draw; with ?measure=1 they
// include a GPU sync), error, loadBytes (bytes of the LDI's layers), texels (splats),
// scene (what the LDI on show was built with), pose, K and canvasSize (its camera).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const preview = (window.preview = {
  ready: false, mode: null, frames: 0, frameTimes: [], drawTimes: [], error: null, pose: null, loadBytes: 0, texels: 0, scene: null,
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
// The server's token, put into the page by the server: its state-changing calls (export,
// cancel, settings) carry it, so that no other page can make them.
const TOKEN = document.querySelector('meta[name="photo3d-token"]').content;
async function api(url, init) {
  if (init && init.method && init.method !== "GET") init = { ...init, headers: { ...init.headers, "X-Photo3D-Token": TOKEN } };
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
const state = { info: null, image: null, scene: null, poses: null, job: null, playing: true, t0: performance.now(),
                drag: null, dragPos: [0, 0], useDrag: false, job: null };

// A select's value; a value it lacks (a saved row naming a model whose weights are not
// here) is added, so that it is shown and kept.
function choose(id, value) {
  const el = $(id);
  if (![...el.options].some((o) => o.value === value)) el.add(new Option(value, value));
  el.value = value;
}
// The depth effects the page sets (exports apply them; the live view does not); the server
// takes every effect of options.OPTION_NAMES.
const EFFECTS = ["dof", "focus_pull", "fog", "falloff", "vignette"];
function options() {
  const o = { path: $("path").value, amount: +$("amount").value, duration: +$("duration").value,
              fps: +$("fps").value, overscan: $("overscan").value === "true", depth: $("depth").value,
              inpaint: $("inpaint").value, clean_depth: $("clean_depth").value === "true" };
  if ($("fov").value !== "") o.fov = +$("fov").value;
  if ($("size").value) o.size = $("size").value;
  for (const id of EFFECTS) if ($(id).value !== "") o[id] = $(id).type === "number" ? +$(id).value : $(id).value;
  if ($("stereo").value !== "none") {  // the stereo options apply only with a layout (config refuses them alone)
    o.stereo = $("stereo").value;
    if ($("ipd").value !== "") o.ipd = +$("ipd").value;
    if ($("vr180").checked) o.vr180 = true;
    else if ($("convergence").value !== "") o.convergence = +$("convergence").value;
  }
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
  if (o.depth) choose("depth", o.depth);
  if (o.inpaint) choose("inpaint", o.inpaint);
  if (o.clean_depth != null) $("clean_depth").value = String(o.clean_depth);
  $("size").value = o.size || "";
  for (const id of EFFECTS) $(id).value = o[id] != null ? o[id] : "";
  $("stereo").value = o.stereo || "none";
  $("ipd").value = o.ipd != null ? o.ipd : "";
  $("convergence").value = o.convergence != null ? o.convergence : "";
  $("vr180").checked = !!o.vr180;
}
// The options that change the LDI (options.SCENE_OPTION_NAMES), for /api/scene, /api/layer
// and the frame stream.
function sceneOptions() {
  const o = { depth: $("depth").value, inpaint: $("inpaint").value, clean_depth: $("clean_depth").value };
  if ($("fov").value !== "") o.fov = $("fov").value;
  return o;
}
function sceneQuery() { return new URLSearchParams({ image: state.image, ...sceneOptions() }); }
function commandLine() {
  const o = options();
  let c = `photo3d render ${state.image} --path ${o.path} --amount ${o.amount} --duration ${o.duration} --fps ${o.fps}`;
  if (o.fov != null) c += ` --fov ${o.fov}`;
  if (o.size) c += ` --size ${o.size}`;
  if (!o.overscan) c += " --no-overscan";
  if (o.depth !== "auto") c += ` --depth ${o.depth}`;
  if (o.inpaint !== state.info.defaults.inpaint) c += ` --inpaint ${o.inpaint}`;
  if (!o.clean_depth) c += " --no-clean-depth";
  for (const id of EFFECTS) if (o[id] != null) c += ` --${id.replace("_", "-")} ${o[id]}`;
  if (o.stereo) c += ` --stereo ${o.stereo}`;
  if (o.ipd != null) c += ` --ipd ${o.ipd}`;
  if (o.convergence != null) c += ` --convergence ${o.convergence}`;
  if (o.vr180) c += " --vr180";
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

// ---- WebGL2 renderer: the op `splat` (ops/splat.py) on the page's GPU ----------------------
//
// The page draws the server's LDI the way the export's renderer does, step by step:
// 1. every valid texel of every layer is a screen-aligned box (a point sprite, or an
//    instanced quad where points cannot be that large or with ?splat=quads) centred
//    on its projection, reaching halfway to its projected 4-neighbours on the same surface
//    (neighbours whose disparities differ by at most the LDI's edge_disparity, on the
//    layer's surface: ldi.LDI.surfaces), times the footprint margin, clamped; across a
//    depth edge half the texel's own size; across a step (neighbours on one surface whose
//    disparities differ by more than the LDI's step_disparity) the nearer texel's side is
//    such a silhouette side and the farther one reaches across the gap
//    (ops.splat.footprints);
// 2. pass 1 keeps the nearest texel of each pixel in a depth buffer linear in disparity;
// 3. pass 2 adds up tent-weighted colours of the texels within resolve_share * edge of it;
// 4. resolve: colour = sum / weight; a silhouette pixel (a neighbour behind it by more than
//    edge) is covered by its surface as far as its summed weight reaches and shows the
//    neighbours behind for the rest (ops.splat.antialias_silhouettes);
// 5. holes take the nearest covered pixel to their left, right, top and bottom, the
//    farther ones first (ops.fill.fill_from_background); the rare pixel with none in its
//    row and column takes the nearest coarser level of a coverage pyramid.
// The constants come from the server (scene.render), so they are the renderer's.
const SPLAT_VS = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2DArray;
uniform highp sampler2DArray uDisp;  // disparity of each layer's surface (LDI.surfaces), R32F
uniform mediump sampler2DArray uColor; // colour of each layer, RGBA8
uniform ivec2 uGrid;       // LDI width, height
uniform mat3 uKinvGrid;    // K^-1 of the LDI grid
uniform mat4 uW2C;         // world-to-camera
uniform vec4 uK;           // fx, fy, cx, cy of the canvas (pixels)
uniform vec2 uSize;        // canvas width, height (pixels)
uniform float uGuard;      // the splat target's border around the canvas (pixels)
uniform float uEdge;       // the LDI's edge_disparity
uniform float uStep;       // the LDI's step_disparity (1e30 where it has none)
uniform float uFocalRatio; // canvas fx / LDI fx
uniform float uDscale;     // depth value = 1 - disparity / uDscale
uniform float uBias;       // pass 2: resolve_share * edge / uDscale nearer
uniform float uFootprint, uMaxHalf, uZNear;
uniform bool uPoints;      // one point sprite per texel, else an instanced quad
in uint aTexel;            // k * W * H + y * W + x
flat out vec3 vColor;
flat out vec2 vCenter;
flat out vec4 vSides;      // left, right, up, down (pixels)

float disp(ivec2 p, int k) { return texelFetch(uDisp, ivec3(p, k), 0).r; }
vec3 project(ivec2 p, float d) { // u, v (OpenCV pixels) and camera z of texel p at disparity d
  vec3 X = (uKinvGrid * vec3(vec2(p) + 0.5, 1.0)) * (1.0 / d);
  vec3 c = (uW2C * vec4(X, 1.0)).xyz;
  float iz = 1.0 / max(c.z, uZNear);
  return vec3(uK.x * c.x * iz + uK.z, uK.y * c.y * iz + uK.w, c.z);
}
// dn: the neighbour's disparity minus this texel's (a step: the neighbour is nearer when > 0)
float side(bool hasNear, float near, float dn, bool hasFar, float far, float shear, float own) {
  if (hasNear && dn > uStep) return clamp(uFootprint * near - 0.5, 0.5, uMaxHalf);
  return hasNear && dn >= -uStep ? clamp(0.5 * uFootprint * max(near, shear), 0.5, uMaxHalf)
                                 : min(hasFar ? 0.5 * far : own, uMaxHalf);
}
void main() {
  int n = uGrid.x * uGrid.y;
  int t = int(aTexel);
  int k = t / n, i = t - k * n;
  ivec2 p = ivec2(i % uGrid.x, i / uGrid.x);
  float d = disp(p, k);
  vec3 c = project(p, d);
  bool hl = false, hr = false, hu = false, hd = false;
  vec3 l = c, r = c, u = c, w = c;
  vec4 e = vec4(d);  // the left, right, up and down neighbours' disparities
  if (p.x > 0) { e.x = disp(p + ivec2(-1, 0), k); hl = abs(e.x - d) <= uEdge; if (hl) l = project(p + ivec2(-1, 0), e.x); }
  if (p.x < uGrid.x - 1) { e.y = disp(p + ivec2(1, 0), k); hr = abs(e.y - d) <= uEdge; if (hr) r = project(p + ivec2(1, 0), e.y); }
  if (p.y > 0) { e.z = disp(p + ivec2(0, -1), k); hu = abs(e.z - d) <= uEdge; if (hu) u = project(p + ivec2(0, -1), e.z); }
  if (p.y < uGrid.y - 1) { e.w = disp(p + ivec2(0, 1), k); hd = abs(e.w - d) <= uEdge; if (hd) w = project(p + ivec2(0, 1), e.w); }
  vec4 dn = e - d;
  float own = 0.5 * uFocalRatio * (1.0 / d) / max(c.z, uZNear);
  float bx = hl ? abs(c.x - l.x) : 0.0, ax = hr ? abs(r.x - c.x) : 0.0;
  float sx = max(hu ? abs(c.x - u.x) : 0.0, hd ? abs(w.x - c.x) : 0.0);
  float by = hu ? abs(c.y - u.y) : 0.0, ay = hd ? abs(w.y - c.y) : 0.0;
  float sy = max(hl ? abs(c.y - l.y) : 0.0, hr ? abs(r.y - c.y) : 0.0);
  vSides = vec4(side(hl, bx, dn.x, hr, ax, sx, own), side(hr, ax, dn.y, hl, bx, sx, own),
                side(hu, by, dn.z, hd, ay, sy, own), side(hd, ay, dn.w, hu, by, sy, own));
  vColor = texelFetch(uColor, ivec3(p, k), 0).rgb;
  vCenter = c.xy;
  if (c.z <= uZNear) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 1.0; return; } // dropped, as the renderer drops it
  float x, y;
  if (uPoints) { // a point sprite over the box, one pixel of margin
    x = c.x + 0.5 * (vSides.y - vSides.x);
    y = c.y + 0.5 * (vSides.w - vSides.z);
    gl_PointSize = max(vSides.x + vSides.y, vSides.z + vSides.w) + 2.0;
  } else { // corner gl_VertexID of an instanced quad
    x = (gl_VertexID & 1) == 1 ? c.x + vSides.y + 1.0 : c.x - vSides.x - 1.0;
    y = (gl_VertexID & 2) == 2 ? c.y + vSides.w + 1.0 : c.y - vSides.z - 1.0;
  }
  float z = max(clamp(1.0 - (1.0 / c.z) / uDscale, 0.0, 1.0) - uBias, 0.0);
  vec2 target = uSize + 2.0 * uGuard;
  gl_Position = vec4(2.0 * (x + uGuard) / target.x - 1.0, 1.0 - 2.0 * (y + uGuard) / target.y, 2.0 * z - 1.0, 1.0);
}`;
const SPLAT_FS = `#version 300 es
precision highp float;
uniform vec2 uSize;
uniform float uGuard;
flat in vec3 vColor;
flat in vec2 vCenter;
flat in vec4 vSides;
out vec4 outColor;
void main() { // a pixel is covered when its centre lies in the box; tent weight over it
  vec2 d = vec2(gl_FragCoord.x - uGuard, uSize.y + uGuard - gl_FragCoord.y) - vCenter;
  vec2 s = vec2(d.x < 0.0 ? vSides.x : vSides.y, d.y < 0.0 ? vSides.z : vSides.w);
  if (abs(d.x) > s.x || abs(d.y) > s.y) discard;
  vec2 t = 1.0 - abs(d) / (s + 0.5);
  outColor = vec4(vColor * (t.x * t.y), t.x * t.y);
}`;
const FULL_VS = `#version 300 es
uniform float uZ;
void main() { vec2 p = vec2(float((gl_VertexID & 1) * 4 - 1), float((gl_VertexID & 2) * 2 - 1)); gl_Position = vec4(p, uZ, 1.0); }`;
const RESOLVE_FS = `#version 300 es
precision highp float;
uniform highp sampler2D uAcc;   // the splat target: the canvas plus uGuard pixels around it
uniform highp sampler2D uDepth;
uniform int uGuard;
uniform float uDscale, uEdge, uCoverageFull;
layout(location = 0) out vec4 outRes; // colour, camera z of the pixel's surface (0: hole)
layout(location = 1) out vec4 outPre; // colour * covered, covered: the orphans' pyramid
float dispAt(ivec2 q) { return (1.0 - texelFetch(uDepth, q + uGuard, 0).r) * uDscale; }
vec4 accAt(ivec2 q) { return texelFetch(uAcc, q + uGuard, 0); }
void main() {
  ivec2 q = ivec2(gl_FragCoord.xy), size = textureSize(uAcc, 0) - 2 * uGuard;
  vec4 a = accAt(q);
  if (a.a <= 0.0) { outRes = vec4(0.0); outPre = vec4(0.0); return; }
  vec3 col = a.rgb / a.a;
  float d = dispAt(q);
  vec3 behind = vec3(0.0);
  float count = 0.0;
  for (int j = 0; j < 4; j++) {
    ivec2 o = q + (j < 2 ? ivec2(j * 2 - 1, 0) : ivec2(0, j * 2 - 5));
    if (any(lessThan(o, ivec2(0))) || any(greaterThanEqual(o, size))) continue;
    vec4 b = accAt(o);
    if (b.a > 0.0 && d - dispAt(o) > uEdge) { behind += b.rgb / b.a; count += 1.0; }
  }
  if (count > 0.0) {
    float alpha = clamp(a.a / uCoverageFull, 0.0, 1.0);
    col = col * alpha + behind / count * (1.0 - alpha);
  }
  col = clamp(col, 0.0, 1.0);
  outRes = vec4(col, 1.0 / max(d, 1e-30));
  outPre = vec4(col, 1.0);
}`;
const COPY_FS = `#version 300 es
precision highp float;
uniform highp sampler2D uRes;
out vec4 outColor;
void main() { // covered pixels, marked in the depth buffer; holes are left to FILL_FS
  vec4 r = texelFetch(uRes, ivec2(gl_FragCoord.xy), 0);
  if (r.a <= 0.0) discard;
  outColor = vec4(r.rgb, 1.0);
}`;
const FILL_FS = `#version 300 es
precision highp float;
uniform highp sampler2D uRes;
uniform highp sampler2D uPre;
uniform float uFarPower;
out vec4 outColor;
void main() { // a hole (the depth test keeps covered pixels out)
  ivec2 q = ivec2(gl_FragCoord.xy), size = textureSize(uRes, 0);
  vec4 cand[4];
  float dist[4];
  float zmax = 0.0;
  for (int j = 0; j < 4; j++) {
    ivec2 step = j < 2 ? ivec2(j * 2 - 1, 0) : ivec2(0, j * 2 - 5);
    cand[j] = vec4(0.0); dist[j] = 1.0;
    ivec2 o = q;
    for (int s = 1; s < 16384; s++) {
      o += step;
      if (any(lessThan(o, ivec2(0))) || any(greaterThanEqual(o, size))) break;
      vec4 c = texelFetch(uRes, o, 0);
      if (c.a > 0.0) { cand[j] = c; dist[j] = float(s); break; }
    }
    zmax = max(zmax, cand[j].a);
  }
  if (zmax > 0.0) {
    vec3 sum = vec3(0.0);
    float total = 0.0;
    for (int j = 0; j < 4; j++) {
      float w = pow(cand[j].a / zmax, uFarPower) / dist[j];
      sum += cand[j].rgb * w; total += w;
    }
    outColor = vec4(sum / total, 1.0);
    return;
  }
  vec2 uv = (vec2(q) + 0.5) / vec2(size);
  for (int level = 1; level < 15; level++) {
    vec4 m = textureLod(uPre, uv, float(level));
    if (m.a > 1e-4) { outColor = vec4(m.rgb / m.a, 1.0); return; }
  }
  outColor = vec4(0.0, 0.0, 0.0, 1.0);
}`;

class GLView {
  constructor(canvas, gl) {
    this.canvas = canvas; this.gl = gl; this.scene = null; this.targets = null;
    // Float render targets: core WebGL2 renders to 8-bit only.
    const full = gl.getExtension("EXT_color_buffer_float");
    const half = full || gl.getExtension("EXT_color_buffer_half_float");
    if (!half) throw new Error("this WebGL2 cannot render to float textures (EXT_color_buffer_float)");
    this.accFormat = full && gl.getExtension("EXT_float_blend") ? gl.RGBA32F : gl.RGBA16F;
    this.resFormat = full ? gl.RGBA32F : gl.RGBA16F;
    this.splat = this.program(SPLAT_VS, SPLAT_FS, ["uDisp", "uColor", "uGrid", "uKinvGrid", "uW2C", "uK", "uSize",
      "uGuard", "uEdge", "uStep", "uFocalRatio", "uDscale", "uBias", "uFootprint", "uMaxHalf", "uZNear", "uPoints"]);
    this.resolve = this.program(FULL_VS, RESOLVE_FS, ["uAcc", "uDepth", "uGuard", "uDscale", "uEdge", "uCoverageFull", "uZ"]);
    this.copy = this.program(FULL_VS, COPY_FS, ["uRes", "uZ"]);
    this.fill = this.program(FULL_VS, FILL_FS, ["uRes", "uPre", "uFarPower", "uZ"]);
    this.vao = gl.createVertexArray();
    this.empty = gl.createVertexArray();
    // A texel's box is at most 2 * max_half_extent + 2 pixels wide: a point sprite where
    // points may be that large (almost everywhere; ?splat=quads forces the fallback).
    this.pointMax = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE)[1];
    this.points = params.get("splat") !== "quads";
  }
  program(vs, fs, uniforms) {
    const gl = this.gl;
    const sh = (type, src) => {
      const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    };
    const prog = gl.createProgram();
    gl.attachShader(prog, sh(gl.VERTEX_SHADER, vs)); gl.attachShader(prog, sh(gl.FRAGMENT_SHADER, fs));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    const u = {};
    for (const n of uniforms) u[n] = gl.getUniformLocation(prog, n);
    return { prog, u };
  }
  texture(target, internal, format, type, w, h, depth, data, filter) {
    const gl = this.gl, t = gl.createTexture();
    gl.bindTexture(target, t);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    if (target === gl.TEXTURE_2D_ARRAY) gl.texImage3D(target, 0, internal, w, h, depth, 0, format, type, data);
    else gl.texImage2D(target, 0, internal, w, h, 0, format, type, data);
    gl.texParameteri(target, gl.TEXTURE_MIN_FILTER, filter || gl.NEAREST);
    gl.texParameteri(target, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(target, p, gl.CLAMP_TO_EDGE);
    return t;
  }
  // The LDI of `scene` (/api/scene's JSON) as the renderer's SurfaceGrid: disp (L*H*W)
  // surface disparity per layer, rgba (L*H*W*4) layer colour, texels: the valid texels'
  // ids k*W*H + y*W + x. It replaces the LDI drawn so far.
  setScene(scene, disp, rgba, texels) {
    const gl = this.gl, { width: w, height: h, layers } = scene;
    this.clear();
    const points = this.points && this.pointMax >= 2 * scene.render.max_half_extent + 2;
    const A = gl.TEXTURE_2D_ARRAY;
    this.scene = { json: scene, w, h, layers, count: texels.length, points,
      disp: this.texture(A, gl.R32F, gl.RED, gl.FLOAT, w, h, layers, disp),
      color: this.texture(A, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, w, h, layers, rgba),
      texels: gl.createBuffer() };
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.scene.texels);
    gl.bufferData(gl.ARRAY_BUFFER, texels, gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(this.splat.prog, "aTexel");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribIPointer(loc, 1, gl.UNSIGNED_INT, 0, 0);
    gl.vertexAttribDivisor(loc, points ? 0 : 1);
    gl.bindVertexArray(null);
  }
  clear() {
    const gl = this.gl, s = this.scene;
    if (s) { gl.deleteTexture(s.disp); gl.deleteTexture(s.color); gl.deleteBuffer(s.texels); }
    this.scene = null;
  }
  // Splats land in a target with a border of `guard` pixels around the canvas: a texel whose
  // centre projects just outside the canvas still covers its edge pixels, as in the
  // renderer, whatever the GPU does with points whose centre is clipped.
  ensureTargets(w, h, guard) {
    const gl = this.gl;
    if (this.targets && this.targets.w === w && this.targets.h === h && this.targets.guard === guard) return this.targets;
    if (this.targets) {
      for (const t of ["acc", "depth", "res", "pre"]) gl.deleteTexture(this.targets[t]);
      gl.deleteFramebuffer(this.targets.splatFb); gl.deleteFramebuffer(this.targets.resFb);
    }
    const T = gl.TEXTURE_2D;
    const t = { w, h, guard,
      acc: this.texture(T, this.accFormat, gl.RGBA, gl.FLOAT, w + 2 * guard, h + 2 * guard, 1, null),
      depth: this.texture(T, gl.DEPTH_COMPONENT32F, gl.DEPTH_COMPONENT, gl.FLOAT, w + 2 * guard, h + 2 * guard, 1, null),
      res: this.texture(T, this.resFormat, gl.RGBA, gl.FLOAT, w, h, 1, null),
      pre: this.texture(T, gl.RGBA16F, gl.RGBA, gl.FLOAT, w, h, 1, null, gl.LINEAR_MIPMAP_NEAREST) };
    gl.bindTexture(T, t.pre); gl.generateMipmap(T);
    const fb = (attachments) => {
      const f = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, f);
      for (const [point, tex] of attachments) gl.framebufferTexture2D(gl.FRAMEBUFFER, point, T, tex, 0);
      const status = gl.checkFramebufferStatus(gl.FRAMEBUFFER);
      if (status !== gl.FRAMEBUFFER_COMPLETE) throw new Error(`framebuffer incomplete (0x${status.toString(16)})`);
      return f;
    };
    t.splatFb = fb([[gl.COLOR_ATTACHMENT0, t.acc], [gl.DEPTH_ATTACHMENT, t.depth]]);
    t.resFb = fb([[gl.COLOR_ATTACHMENT0, t.res], [gl.COLOR_ATTACHMENT1, t.pre]]);
    gl.drawBuffers([gl.COLOR_ATTACHMENT0, gl.COLOR_ATTACHMENT1]);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    this.targets = t;
    return t;
  }
  draw(cam) {
    const gl = this.gl, cv = this.canvas, s = this.scene;
    const Kc = scaleK(cam.Kf, cam.size, [cv.width, cv.height]);
    preview.K = Kc; preview.canvasSize = [cv.width, cv.height];
    if (!s) return;
    const scene = s.json, R = scene.render;
    const guard = Math.ceil(R.max_half_extent) + 2;
    const t = this.ensureTargets(cv.width, cv.height, guard);
    // depth value = 1 - disparity / dscale: linear in disparity, which the renderer
    // compares; no camera of a path gets near 16x the LDI's largest disparity
    const dscale = 16 * scene.disparity_max;

    // 1-3. splats: pass 1 keeps the nearest texel's depth, pass 2 adds up tent-weighted
    // colours of the texels within resolve_share * edge of it
    const sp = this.splat;
    gl.useProgram(sp.prog);
    gl.uniform1i(sp.u.uDisp, 0); gl.uniform1i(sp.u.uColor, 1);
    gl.uniform2i(sp.u.uGrid, s.w, s.h);
    gl.uniformMatrix3fv(sp.u.uKinvGrid, false, inv3(scene.K));
    gl.uniformMatrix4fv(sp.u.uW2C, false, colMajor4(worldToCamera(cam.c2w)));
    gl.uniform4f(sp.u.uK, Kc[0][0], Kc[1][1], Kc[0][2], Kc[1][2]);
    gl.uniform2f(sp.u.uSize, cv.width, cv.height);
    gl.uniform1f(sp.u.uGuard, guard);
    gl.uniform1f(sp.u.uEdge, scene.edge_disparity);
    gl.uniform1f(sp.u.uStep, scene.step_disparity ?? 1e30);
    gl.uniform1f(sp.u.uFocalRatio, Kc[0][0] / scene.K[0][0]);
    gl.uniform1f(sp.u.uDscale, dscale);
    gl.uniform1f(sp.u.uFootprint, R.footprint_margin);
    gl.uniform1f(sp.u.uMaxHalf, R.max_half_extent);
    gl.uniform1f(sp.u.uZNear, R.z_near);
    gl.uniform1i(sp.u.uPoints, s.points ? 1 : 0);
    gl.activeTexture(gl.TEXTURE0); gl.bindTexture(gl.TEXTURE_2D_ARRAY, s.disp);
    gl.activeTexture(gl.TEXTURE1); gl.bindTexture(gl.TEXTURE_2D_ARRAY, s.color);
    gl.bindFramebuffer(gl.FRAMEBUFFER, t.splatFb);
    gl.viewport(0, 0, t.w + 2 * guard, t.h + 2 * guard);
    gl.bindVertexArray(this.vao);
    const splats = () => (s.points ? gl.drawArrays(gl.POINTS, 0, s.count)
                                   : gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, s.count));
    gl.disable(gl.BLEND);
    gl.enable(gl.DEPTH_TEST);
    gl.depthMask(true); gl.clearDepth(1); gl.depthFunc(gl.LESS);
    gl.colorMask(true, true, true, true); gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.colorMask(false, false, false, false);
    gl.uniform1f(sp.u.uBias, 0);
    splats();
    gl.colorMask(true, true, true, true);
    gl.depthMask(false); gl.depthFunc(gl.LEQUAL);
    gl.enable(gl.BLEND); gl.blendEquation(gl.FUNC_ADD); gl.blendFunc(gl.ONE, gl.ONE);
    gl.uniform1f(sp.u.uBias, R.resolve_share * scene.edge_disparity / dscale);
    splats();
    gl.disable(gl.BLEND); gl.disable(gl.DEPTH_TEST); gl.depthMask(true);

    // 4. resolve, silhouettes anti-aliased
    gl.bindVertexArray(this.empty);
    gl.bindFramebuffer(gl.FRAMEBUFFER, t.resFb);
    gl.viewport(0, 0, t.w, t.h);
    const rs = this.resolve;
    gl.useProgram(rs.prog);
    gl.activeTexture(gl.TEXTURE0); gl.bindTexture(gl.TEXTURE_2D, t.acc);
    gl.activeTexture(gl.TEXTURE1); gl.bindTexture(gl.TEXTURE_2D, t.depth);
    gl.uniform1i(rs.u.uAcc, 0); gl.uniform1i(rs.u.uDepth, 1); gl.uniform1i(rs.u.uGuard, guard);
    gl.uniform1f(rs.u.uDscale, dscale); gl.uniform1f(rs.u.uEdge, scene.edge_disparity);
    gl.uniform1f(rs.u.uCoverageFull, R.coverage_full); gl.uniform1f(rs.u.uZ, 0);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindTexture(gl.TEXTURE_2D, t.pre); gl.generateMipmap(gl.TEXTURE_2D);

    // 5. into the canvas: covered pixels (marked at depth 0 of the canvas's depth buffer),
    // then the hole fill, which the depth test runs on the holes only
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, t.w, t.h);
    gl.enable(gl.DEPTH_TEST); gl.depthFunc(gl.LESS);
    gl.clear(gl.DEPTH_BUFFER_BIT);
    gl.activeTexture(gl.TEXTURE0); gl.bindTexture(gl.TEXTURE_2D, t.res);
    gl.activeTexture(gl.TEXTURE1); gl.bindTexture(gl.TEXTURE_2D, t.pre);
    const cp = this.copy, fl = this.fill;
    gl.useProgram(cp.prog);
    gl.uniform1i(cp.u.uRes, 0); gl.uniform1f(cp.u.uZ, -1);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.useProgram(fl.prog);
    gl.uniform1i(fl.u.uRes, 0); gl.uniform1i(fl.u.uPre, 1); gl.uniform1f(fl.u.uZ, 0);
    gl.uniform1f(fl.u.uFarPower, R.far_power);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.disable(gl.DEPTH_TEST);
    gl.bindVertexArray(null);
    if (params.get("measure") === "1") gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  }
}

async function decodePng(resp, w, h) { // RGBA bytes of a PNG, exactly as stored (opaque pixels)
  const blob = await resp.blob();
  preview.loadBytes += blob.size;
  const bmp = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const c2d = new OffscreenCanvas(w, h).getContext("2d", { willReadFrequently: true });
  c2d.drawImage(bmp, 0, 0);
  return new Uint8Array(c2d.getImageData(0, 0, w, h).data.buffer);
}

async function loadLayers(view, scene) {
  const q = sceneQuery();
  const { width: w, height: h, layers: L } = scene;
  const n = w * h;
  const lo = scene.disparity_min, span = scene.disparity_max - scene.disparity_min;
  preview.loadBytes = 0;
  const data = await Promise.all([...Array(L).keys()].map(async (k) => {
    const [color, depth] = await Promise.all([api(`/api/layer?${q}&k=${k}&kind=color`),
      api(`/api/layer?${q}&k=${k}&kind=depth&format=packed`)]);
    return [await decodePng(color, w, h), await decodePng(depth, w, h)];
  }));
  // surface k: layer k where it is valid, else surface k-1 (ldi.LDI.surfaces)
  const disp = new Float32Array(n * L), rgba = new Uint8Array(n * L * 4), texels = new Uint32Array(n * L);
  let count = 0;
  for (let k = 0; k < L; k++) {
    const [color, depth] = data[k];
    rgba.set(color, k * n * 4);
    for (let i = 0; i < n; i++) {
      const v = depth[4 * i] * 256 + depth[4 * i + 1];
      if (v) { disp[k * n + i] = lo + ((v - 1) / 65534) * span; texels[count++] = k * n + i; }
      else disp[k * n + i] = k ? disp[(k - 1) * n + i] : lo;
    }
  }
  view.setScene(scene, disp, rgba, texels.subarray(0, count));
  preview.texels = count;
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
    this.ws.send(JSON.stringify({ image: state.image, ...sceneOptions(),
      c2w: cam.c2w, K: Kc.flat(), width: size[0], height: size[1] }));
  }
}

// ---- main loop --------------------------------------------------------------------------------
let view = null, stream = null, lastFrame = 0;
// Frames from the server over the WebSocket instead of WebGL2 (asked for, or WebGL2 failed).
function serverFrames(reason) {
  if (reason) status(reason, true);
  view = null;
  preview.mode = "server";
  $("gl").hidden = true; $("frame").hidden = false;
  stream = new StreamView($("frame"));
  setupDrag($("frame"));
  stream.open.catch((e) => status(e.message, true));
}
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
    try { view.draw(cam); } catch (e) { serverFrames(`WebGL2 failed (${e.message}); using server frames`); return; }
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
    if (view) await loadLayers(view, scene);
    state.scene = scene;
    preview.scene = { inpaint: scene.inpaint, clean_depth: scene.clean_depth, width: scene.width, height: scene.height,
                      step_disparity: scene.step_disparity };
    // the tests draw an estimated map's LDI as an exact one's to check the steps' footprints
    if (params.get("measure") === "1") preview.setStep = (v) => { scene.step_disparity = v; };
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
  const reloadScene = ev && state.info.scene_option_names.includes(ev.target.id);
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

// The 3D view: the .glb `photo3d export` writes for this photo and scene options, drawn by
// three.js (static/viewer3d.js, loaded on first use: it is 0.6 MB) and orbitable.
let viewer3d = null;
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src; s.onload = resolve; s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(s);
  });
}
async function open3d() {
  const url = `/api/scene.glb?${sceneQuery()}`;
  $("scene3d").hidden = false;
  $("scene3d-download").href = url;
  $("scene3d-status").textContent = "building the 3D scene (as photo3d export does)…";
  preview.scene3d = null;
  try {
    if (!window.photo3dViewer) await loadScript("/static/viewer3d.js");
    viewer3d?.dispose();
    viewer3d = await window.photo3dViewer.showScene($("gl3d"), url, {
      onProgress: (f) => { $("scene3d-status").textContent = `loading the 3D scene ${Math.round(100 * f)}%`; } });
    $("scene3d-status").textContent = "drag to orbit, scroll to zoom, right-drag to pan";
    preview.scene3d = "ready";
  } catch (e) {
    $("scene3d-status").textContent = `3D view failed: ${e.message}`;
    preview.scene3d = `error: ${e.message}`;
  }
}
function close3d() {
  viewer3d?.dispose(); viewer3d = null;
  $("scene3d").hidden = true;
}

async function exportClip() {
  $("download").hidden = true;
  $("progress").hidden = false; $("progress").value = 0;
  try {
    const body = JSON.stringify({ image: state.image, options: options() });
    let job = await (await api("/api/export", { method: "POST", headers: { "Content-Type": "application/json" }, body })).json();
    state.job = job;
    $("cancel").hidden = false;
    status(`export ${job.id}: ${job.state}`);
    while (job.state === "queued" || job.state === "running") {
      await new Promise((r) => setTimeout(r, 500));
      job = await (await api(`/api/jobs/${job.id}`)).json();
      $("progress").value = job.progress;
      status(`export ${job.id}: ${job.state} ${job.done}/${job.total} frames`);
    }
    if (job.state === "error") throw new Error(`export failed: ${job.error}`);
    if (job.state === "cancelled") { status(`export ${job.id}: cancelled`); return; }
    $("download").href = job.download; $("download").hidden = false;
    status(`export ${job.id}: done, ${job.total} frames`);
  } catch (e) { status(e.message, true); } finally {
    $("cancel").hidden = true;
    state.job = null;
  }
}
async function cancelExport() {
  if (!state.job) return;
  try {
    await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" });
    status(`export ${state.job.id}: cancelling…`);
  } catch (e) { status(e.message, true); }
}
// The server's limits on what an export may be (options.py), on the inputs.
function applyLimits(limits) {
  $("duration").max = limits.max_export_seconds;
  $("fps").max = limits.max_export_fps;
  for (const o of [...$("size").options]) {
    const [w, h] = o.value.split("x").map(Number);
    if (o.value && Math.max(w, h) > limits.max_export_side) o.remove();
  }
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
  for (const m of info.inpaint_methods) $("inpaint").add(new Option(m, m));
  $("inpaint").value = info.defaults.inpaint;
  $("clean_depth").value = String(info.defaults.clean_depth);
  for (const p of info.photos) $("photo").add(new Option(p, p));
  applyLimits(info.limits);
  if (info.mode === "folder") { $("photo-row").hidden = false; $("save").hidden = false; }
  for (const id of info.option_names) $(id)?.addEventListener("change", onChange);
  $("amount").addEventListener("input", () => { $("amount-out").textContent = $("amount").value; });
  $("photo").addEventListener("change", () => selectPhoto($("photo").value));
  $("play").addEventListener("click", () => {
    state.playing = !state.playing; state.useDrag = false;
    if (state.playing) state.t0 = performance.now() - ((state.frozen || 0) / (state.poses?.fps || 30)) * 1000;
    $("play").textContent = state.playing ? "Pause" : "Play";
  });
  $("export").addEventListener("click", exportClip);
  $("view3d").addEventListener("click", open3d);
  $("scene3d-close").addEventListener("click", close3d);
  $("scene3d-home").addEventListener("click", () => viewer3d?.reset());
  $("cancel").addEventListener("click", cancelExport);
  $("save").addEventListener("click", saveSettings);

  const want = params.get("mode");
  const gl = want === "server" ? null : $("gl").getContext("webgl2", { antialias: false, depth: true, preserveDrawingBuffer: true });
  if (gl) {
    try { view = new GLView($("gl"), gl); preview.mode = "webgl2"; setupDrag($("gl")); } catch (e) { serverFrames(`WebGL2 failed (${e.message}); using server frames`); }
  } else {
    serverFrames(want === "server" ? null : "no WebGL2 here; using server frames");
  }
  try { await stream?.open; } catch (e) { status(e.message, true); return; }
  setupTilt();
  requestAnimationFrame(tick);
  await selectPhoto(info.photos[0]);
}
main();
