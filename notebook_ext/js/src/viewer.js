// The notebook's GLB viewer (an anywidget ES module): three.js with GLTFLoader, OrbitControls and a
// RoomEnvironment light probe, so PBR materials from our GLBs don't render black. Everything is bundled;
// nothing is fetched at run time.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { RoomEnvironment } from "three/addons/environments/RoomEnvironment.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

function toArrayBuffer(value) {
  // anywidget hands Bytes traits over as a DataView (or ArrayBuffer); copy out exactly the view's bytes.
  if (!value) return null;
  if (value instanceof ArrayBuffer) return value;
  if (ArrayBuffer.isView(value)) {
    return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
  }
  return null;
}

function frame(camera, controls, object) {
  // Fit the bounding sphere inside the narrower of the two fields of view, with a margin.
  const box = new THREE.Box3().setFromObject(object);
  if (box.isEmpty()) return;
  const radius = box.getSize(new THREE.Vector3()).length() / 2 || 1;
  const center = box.getCenter(new THREE.Vector3());
  const vertical = THREE.MathUtils.degToRad(camera.fov) / 2;
  const horizontal = Math.atan(Math.tan(vertical) * camera.aspect);
  const distance = (1.15 * radius) / Math.sin(Math.min(vertical, horizontal));
  camera.near = distance / 100;
  camera.far = distance * 100;
  camera.position.copy(center).add(new THREE.Vector3(0.6, 0.45, 0.9).normalize().multiplyScalar(distance));
  camera.updateProjectionMatrix();
  controls.target.copy(center);
  controls.update();
}

function render({ model, el }) {
  const height = model.get("height") || 420;
  const root = document.createElement("div");
  root.className = "i2m-viewer";
  root.style.position = "relative";
  root.style.width = "100%";
  root.style.height = `${height}px`;
  el.appendChild(root);

  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.toneMapping = THREE.ACESFilmicToneMapping;
  root.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color(model.get("background") || "#f4f4f4");
  const pmrem = new THREE.PMREMGenerator(renderer);
  const envTexture = pmrem.fromScene(new RoomEnvironment(), 0.04).texture;
  scene.environment = envTexture;
  scene.add(new THREE.HemisphereLight(0xffffff, 0x888888, 0.6));

  const camera = new THREE.PerspectiveCamera(40, 1, 0.01, 100);
  camera.position.set(1.2, 0.9, 1.8);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  controls.autoRotateSpeed = 3.0;

  let current = null;
  let loading = false;
  let generation = 0; // bumped by each load(), so a parse that finishes after a newer glb is dropped
  const loader = new GLTFLoader();

  function setWireframe(on) {
    if (!current) return;
    current.traverse((node) => {
      if (node.isMesh) {
        for (const m of Array.isArray(node.material) ? node.material : [node.material]) m.wireframe = on;
      }
    });
  }

  function dispose(object) {
    object.traverse((node) => {
      if (node.geometry) node.geometry.dispose();
      const mats = node.material ? (Array.isArray(node.material) ? node.material : [node.material]) : [];
      for (const m of mats) {
        for (const v of Object.values(m)) if (v && v.isTexture) v.dispose();
        m.dispose();
      }
    });
  }

  function setStatus(status) {
    model.set("status", status);
    model.save_changes();
  }

  function loaded(gltf, mine) {
    if (mine !== generation) {
      dispose(gltf.scene);
      return;
    }
    loading = false;
    current = gltf.scene;
    scene.add(current);
    setWireframe(model.get("wireframe"));
    frame(camera, controls, current);
    let meshes = 0;
    current.traverse((node) => {
      if (node.isMesh) meshes += 1;
    });
    setStatus(`loaded:${meshes}`);
    answerScreenshot();
  }

  function failed(error, mine) {
    if (mine !== generation) return;
    loading = false;
    setStatus(`error:${error && error.message ? error.message : error}`);
    answerScreenshot();
  }

  function load() {
    const mine = ++generation;
    const buffer = toArrayBuffer(model.get("glb"));
    if (current) {
      scene.remove(current);
      dispose(current);
      current = null;
    }
    if (!buffer || buffer.byteLength === 0) {
      loading = false;
      setStatus("empty");
      answerScreenshot();
      return;
    }
    loading = true;
    setStatus("loading");
    loader.parse(
      buffer,
      "",
      (gltf) => loaded(gltf, mine),
      (error) => failed(error, mine),
    );
  }

  function resize() {
    const width = root.clientWidth || 640;
    renderer.setSize(width, height, true);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
  }

  // screenshot() in Python counts `_screenshot_request` up. The request is state, not a message, so it waits
  // for a view that exists and has finished loading the model; the first such view answers and marks it done.
  function answerScreenshot() {
    const request = model.get("_screenshot_request");
    if (loading || request <= model.get("_screenshot_answered")) return;
    model.set("_screenshot_answered", request);
    model.save_changes();
    renderer.render(scene, camera);
    const url = renderer.domElement.toDataURL("image/png");
    model.send({ type: "screenshot", data: url.slice(url.indexOf(",") + 1) });
  }

  let running = true;
  function tick() {
    if (!running) return;
    controls.autoRotate = Boolean(model.get("turntable"));
    controls.update();
    renderer.render(scene, camera);
    requestAnimationFrame(tick);
  }

  const observer = new ResizeObserver(resize);
  observer.observe(root);
  resize();
  model.on("change:glb", load);
  model.on("change:wireframe", () => setWireframe(model.get("wireframe")));
  model.on("change:background", () => scene.background.set(model.get("background") || "#f4f4f4"));
  model.on("change:_screenshot_request", answerScreenshot);
  load();
  tick();

  return () => {
    running = false;
    generation += 1;
    observer.disconnect();
    if (current) dispose(current);
    envTexture.dispose();
    pmrem.dispose();
    controls.dispose();
    renderer.dispose();
    // Browsers keep only a few WebGL contexts alive; give this one back now rather than at garbage collection.
    renderer.forceContextLoss();
    root.remove();
  };
}

export default { render };
