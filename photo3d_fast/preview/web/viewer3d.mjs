// The preview's 3D view: the photo's exported scene (a .glb from /api/mesh.glb, the same
// file `photo3d export` writes) drawn by three.js, orbitable with the mouse or a finger.
// Bundled with three.js into ../static/viewer3d.js (package.json: `npm run build`); the
// page loads that bundle only when the 3D view is first opened, and calls
// photo3dViewer.showScene(canvas, url).
//
// The scene is the photo unlit: every material becomes a MeshBasicMaterial with its own
// texture (or vertex colours), so the colours are the photo's whatever the lights. The view
// opens at the glTF camera the export wrote (the photo's viewpoint: the origin, looking
// down -z) and orbits about a point on its axis at the scene's median depth, at most 25
// degrees away from the photo's view.

import {
  Color,
  DoubleSide,
  MeshBasicMaterial,
  PerspectiveCamera,
  Scene,
  SRGBColorSpace,
  Vector3,
  WebGLRenderer,
} from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

// Largest orbit away from the photo's view, radians (25 degrees).
const MAX_ORBIT = (25 * Math.PI) / 180;

function unlit(root) {
  root.traverse((node) => {
    if (!node.isMesh && !node.isPoints) return;
    const old = Array.isArray(node.material) ? node.material[0] : node.material;
    const map = old && old.map ? old.map : null;
    if (map) map.colorSpace = SRGBColorSpace;
    node.material = new MeshBasicMaterial({
      map,
      vertexColors: !map && !!node.geometry.getAttribute("color"),
      side: DoubleSide,
    });
    if (old) old.dispose();
  });
}

// The median depth of the scene's vertices along the view axis: the subject's distance,
// about which orbiting looks natural (a bounding box's middle is pulled far by the background).
function medianDepth(root, origin, forward) {
  const depths = [];
  const p = new Vector3();
  root.updateWorldMatrix(true, true);
  root.traverse((node) => {
    const pos = node.isMesh && node.geometry.getAttribute("position");
    if (!pos) return;
    const step = Math.max(1, Math.floor(pos.count / 20000));
    for (let i = 0; i < pos.count; i += step) {
      p.fromBufferAttribute(pos, i).applyMatrix4(node.matrixWorld);
      depths.push(p.sub(origin).dot(forward));
    }
  });
  if (!depths.length) return 3;
  depths.sort((a, b) => a - b);
  return Math.max(0.1, depths[depths.length >> 1]);
}

// The camera the file opens at: its first glTF camera (the photo's), else one at the origin.
function startCamera(gltf, aspect) {
  const cam = gltf.cameras && gltf.cameras[0];
  const camera = new PerspectiveCamera(cam && cam.isPerspectiveCamera ? cam.fov : 55, aspect, 0.01, 1000);
  if (cam) {
    cam.updateWorldMatrix(true, false);
    camera.position.setFromMatrixPosition(cam.matrixWorld);
    camera.quaternion.setFromRotationMatrix(cam.matrixWorld);
  }
  return camera;
}

/**
 * Show the scene of `url` (a .glb) on `canvas`; resolves to {dispose, reset} once loaded.
 * onProgress(fraction) is called while the file downloads.
 */
export async function showScene(canvas, url, { onProgress } = {}) {
  const renderer = new WebGLRenderer({ canvas, antialias: true });
  renderer.outputColorSpace = SRGBColorSpace;
  renderer.setPixelRatio(Math.min(2, window.devicePixelRatio || 1));
  const gltf = await new GLTFLoader().loadAsync(url, (e) => {
    if (onProgress && e.lengthComputable) onProgress(e.loaded / e.total);
  });
  const scene = new Scene();
  scene.background = new Color(0x111111);
  scene.add(gltf.scene);
  unlit(gltf.scene);

  const size = () => [canvas.clientWidth || canvas.width, canvas.clientHeight || canvas.height];
  let [w, h] = size();
  const camera = startCamera(gltf, w / h);
  const home = { position: camera.position.clone(), quaternion: camera.quaternion.clone() };
  // Orbit about the scene's middle depth on the camera's axis, so a drag swings around the
  // subject, not around the camera.
  const forward = new Vector3(0, 0, -1).applyQuaternion(camera.quaternion);
  const middle = medianDepth(gltf.scene, camera.position, forward);
  const controls = new OrbitControls(camera, canvas);
  controls.target.copy(camera.position).addScaledVector(forward, middle);
  controls.enableDamping = true;
  // One photo holds one side of the scene: from far around it, its relief is seen edge-on.
  // The orbit stays within MAX_ORBIT of the photo's view, and slower than three.js's
  // default (a full turn per canvas height).
  controls.rotateSpeed = 0.4;
  controls.minAzimuthAngle = -MAX_ORBIT;
  controls.maxAzimuthAngle = MAX_ORBIT;
  controls.minPolarAngle = Math.PI / 2 - MAX_ORBIT;
  controls.maxPolarAngle = Math.PI / 2 + MAX_ORBIT;
  controls.update();

  let frame = 0;
  const draw = () => {
    const [cw, ch] = size();
    if (cw !== w || ch !== h) {
      [w, h] = [cw, ch];
      camera.aspect = w / h;
      camera.updateProjectionMatrix();
    }
    renderer.setSize(w, h, false);
    controls.update();
    renderer.render(scene, camera);
    frame = requestAnimationFrame(draw);
  };
  draw();
  return {
    reset() {
      camera.position.copy(home.position);
      camera.quaternion.copy(home.quaternion);
      controls.target.copy(home.position).addScaledVector(forward, middle);
      controls.update();
    },
    dispose() {
      cancelAnimationFrame(frame);
      controls.dispose();
      scene.traverse((node) => {
        if (node.geometry) node.geometry.dispose();
        if (node.material) {
          if (node.material.map) node.material.map.dispose();
          node.material.dispose();
        }
      });
      renderer.dispose();
    },
  };
}
