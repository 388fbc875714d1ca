"""``photo3d export`` and ``export_scene``: a photo's 3D scene as a file for 3D viewers and
tools: .glb / .gltf (textured mesh, camera), .obj (+ .mtl + texture .png), .ply (coloured
point cloud, or with --mesh the vertex-coloured mesh).

The scene is built as a clip builds it (``pipeline.prepare_photo``, then the LDI of
``build_ldi`` with the band and edge threshold of the default camera path), the mesh is
``scene.mesh.build_mesh``'s, and trimesh (extra ``photo3d_fast[export]``) writes the
formats. Axes: the photo camera's OpenCV frame (x right, y down, z forward) is written as
glTF's (x right, y up, z backward): (x, y, z) -> (x, -y, -z), for every format; units are
the scene's (``--near``..``--far``). The glTF camera sits at the origin with the photo's
vertical field of view and aspect, so a viewer opens at the photo's viewpoint.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .clip import option_files
from .config import PHOTO_OPTIONS, ClipOptions, ExportConfig
from .device import resolve_device
from .errors import Photo3DError, notice
from .io import check_output, load_image, partial_name, remove_stale_partials
from .photo_args import add_photo_arguments, image_argument
from .pipeline import SAMPLE_IMAGE, clip_ldi, engine_options, plan_clip, prepare_photo
from .scene.ldi import LDI
from .scene.mesh import Mesh, build_mesh, point_cloud

#: Output formats by extension.
FORMATS = (".glb", ".gltf", ".obj", ".ply")
#: The clip options (flat names, ``config.OPTIONS``) that shape the exported scene; the
#: others (motion, encoding, output size) do not apply.
SCENE_OPTIONS = (*PHOTO_OPTIONS, "layers", "inpaint", "clean_depth", "kernels")
#: OpenCV camera axes -> glTF's (y up, looking down -z).
TO_GLTF = np.array([1.0, -1.0, -1.0], np.float32)

EXPORT_EPILOG = """\
examples:
  photo3d export photo.jpg -o scene.glb
  photo3d export photo.jpg -o scene.ply                 # coloured point cloud
  photo3d export photo.jpg -o scene.obj --max-faces 200000

axes: x right, y up, z towards the viewer (glTF's); the photo's camera is at the origin
looking down -z, in scene units (--near..--far). The mesh is cut at the renderer's depth
edges; back layers fill what the foreground hides.
"""


def _trimesh():
    try:
        import trimesh
    except ImportError:
        raise Photo3DError("photo3d export needs trimesh: pip install 'photo3d_fast[export]'") from None
    return trimesh


def export_ldi(prepared, opts: ClipOptions, quiet: bool = True) -> LDI:
    """The LDI a clip of ``opts`` renders (``pipeline.render_into``'s), for the default
    camera path's motion: the band and edge threshold follow it."""
    plan = plan_clip(prepared, opts)
    return clip_ldi(plan, opts, plan.path.max_translation(), quiet)[0]


def camera_gltf(K: np.ndarray, size: tuple[int, int], znear: float) -> dict:
    """The glTF perspective camera of intrinsics K (3, 3) of a (W, H) image: yfov (radians)
    and aspect ratio as K sees them (a principal point off centre is not representable)."""
    w, h = size
    return {"name": "photo", "type": "perspective",
            "perspective": {"yfov": 2.0 * math.atan(0.5 * h / float(K[1, 1])),
                            "aspectRatio": (w / float(K[0, 0])) / (h / float(K[1, 1])), "znear": znear}}


def _gltf_tree(K: np.ndarray, size: tuple[int, int], znear: float) -> Callable[[dict], None]:
    """trimesh's tree post-processor: the photo's camera as a node at the origin (glTF
    cameras look down -z with y up, the frame the vertices are written in), and unlit
    materials (the colours are the photo's, lighting is baked in)."""

    def post(tree: dict) -> None:
        tree["cameras"] = [camera_gltf(K, size, znear)]
        tree.setdefault("nodes", []).append({"name": "photo_camera", "camera": 0})
        tree["scenes"][0].setdefault("nodes", []).append(len(tree["nodes"]) - 1)
        for material in tree.get("materials", []):
            material.setdefault("extensions", {})["KHR_materials_unlit"] = {}
        used = tree.setdefault("extensionsUsed", [])
        if "KHR_materials_unlit" not in used:
            used.append("KHR_materials_unlit")

    return post


def _textured(tm, mesh: Mesh, faces: np.ndarray, material) -> Any:
    """A trimesh.Trimesh of ``faces`` (indices into mesh's vertices) with only the vertices
    they use, glTF axes, trimesh's UV convention (v up: trimesh flips it for glTF)."""
    mark = np.zeros(len(mesh.vertices), bool)
    mark[faces.ravel()] = True  # linear time, where np.unique would sort
    used = np.flatnonzero(mark)
    index = np.cumsum(mark) - 1
    uv = mesh.uvs[used].astype(np.float64)
    uv[:, 1] = 1.0 - uv[:, 1]
    return tm.Trimesh(vertices=mesh.vertices[used] * TO_GLTF, faces=index[faces],
                      visual=tm.visual.TextureVisuals(uv=uv, material=material), process=False)


def scene_files(ldi: LDI, out_path: Path, config: ExportConfig = ExportConfig()) -> tuple[dict[str, bytes], str]:
    """The files of the export of ``ldi`` to ``out_path`` ({file name: bytes}, the main
    file's name last) and a note of what they hold. Nothing is written here."""
    tm = _trimesh()
    suffix = out_path.suffix.lower()
    stem = out_path.stem
    if suffix == ".ply" and not config.mesh:
        points, colors = point_cloud(ldi)
        cloud = tm.PointCloud(points * TO_GLTF, colors=np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], 1))
        return {out_path.name: cloud.export(file_type="ply")}, f"{len(points)} points"
    mesh = build_mesh(ldi, config.max_faces)
    if len(mesh.faces) == 0:
        raise Photo3DError("the scene has no two neighbouring pixels on one surface, so no mesh; "
                           "export it as a .ply point cloud")
    note = (f"{len(mesh.faces)} triangles, {len(mesh.vertices)} vertices"
            + (f", flat regions merged in blocks of up to {mesh.stride}x{mesh.stride} cells" if mesh.stride > 1 else "")
            + f", texture {mesh.texture.shape[1]}x{mesh.texture.shape[0]}")
    if suffix == ".ply":
        colored = tm.Trimesh(vertices=mesh.vertices * TO_GLTF, faces=mesh.faces, vertex_colors=mesh.colors, process=False)
        return {out_path.name: colored.export(file_type="ply")}, note
    image = Image.fromarray(mesh.texture)
    if suffix == ".obj":
        material = tm.visual.material.SimpleMaterial(image=image, name=f"{stem}_texture")
        obj = _textured(tm, mesh, mesh.faces, material)
        text, extra = tm.exchange.obj.export_obj(obj, include_normals=False, include_texture=True,
                                                 return_texture=True, mtl_name=f"{stem}.mtl")
        files = {name: data if isinstance(data, bytes) else data.encode() for name, data in extra.items()}
        files[out_path.name] = text.encode()
        return files, note
    material = tm.visual.material.PBRMaterial(name="photo", baseColorTexture=image, metallicFactor=0.0,
                                              roughnessFactor=1.0, doubleSided=True)
    scene = tm.Scene()
    for layer in np.unique(mesh.face_layer):
        scene.add_geometry(_textured(tm, mesh, mesh.faces[mesh.face_layer == layer], material),
                           geom_name=f"layer_{layer}", node_name=f"layer_{layer}")
    post = _gltf_tree(ldi.K, ldi.size, znear=0.5 * float(mesh.vertices[:, 2].min()))
    if suffix == ".glb":
        return {out_path.name: tm.exchange.gltf.export_glb(scene, tree_postprocessor=post)}, note
    files = tm.exchange.gltf.export_gltf(scene, merge_buffers=True, embed_buffers=True, tree_postprocessor=post)
    return {out_path.name: files["model.gltf"]}, note


def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Write every file under a temporary name, then rename them all into place, the main
    file (the last) last; on any failure none of them is left."""
    temps = {name: partial_name(directory / name) for name in files}
    placed: list[Path] = []
    try:
        for name, data in files.items():
            temps[name].write_bytes(data)
        for name in files:
            os.replace(temps[name], directory / name)
            placed.append(directory / name)
    except BaseException as e:
        for p in [*temps.values(), *placed]:
            p.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise Photo3DError(f"cannot write {str(directory / name)!r}: {e.strerror or e}") from None
        raise


def check_export_output(out_path: Path, inputs: list) -> None:
    """Photo3DError, before any work, for an output that cannot be written: an unknown
    extension, a directory, the input, a missing or read-only folder."""
    if out_path.suffix.lower() not in FORMATS:
        raise Photo3DError(f"export output {str(out_path)!r} must end in {', '.join(FORMATS)}")
    check_output(out_path, inputs, "export output")
    if out_path.suffix.lower() == ".obj":  # its .mtl and texture go beside it
        for extra in (out_path.with_suffix(".mtl"), out_path.with_name(f"{out_path.stem}_texture.png")):
            check_output(extra, inputs, "export output")
    parent = out_path.parent.resolve()
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise Photo3DError(f"cannot write {str(out_path)!r}: directory {str(out_path.parent)!r} is missing or not writable")


def export_scene(image_path: str | Path | None, out_path: str | Path, *, quiet: bool = False,
                 options: ClipOptions | None = None, max_faces: int | None = None, mesh: bool | None = None,
                 **flat: Any) -> Path:
    """Export a photo's 3D scene: .glb/.gltf (textured mesh and the photo's camera), .obj
    (+ .mtl + texture .png beside it), .ply (coloured point cloud of every LDI texel, or
    the vertex-coloured mesh with ``mesh=True``).

    image_path: the photo (None: the bundled sample); out_path: the file to write (its
    extension picks the format; written under temporary names and renamed when complete).
    Scene options as ``render_clip``'s, by flat name (``SCENE_OPTIONS``: depth, depth_kind,
    weights, fov, near, far, layers, inpaint, clean_depth, kernels, device, runtime,
    precision, offline) or ``options=ClipOptions(...)``; max_faces: most triangles (flat
    regions are merged to fit, ``scene.mesh``); mesh: .ply as a mesh. Vertices are in the
    photo camera's frame with glTF axes (x right, y up, z backward), scene units. Returns
    the path written.
    """
    if options is not None and flat:
        raise TypeError("export_scene takes options=ClipOptions(...) or keyword options, not both")
    opts = options if options is not None else ClipOptions.from_flat_only(flat, SCENE_OPTIONS, "export")
    config = ExportConfig(**{k: v for k, v in (("max_faces", max_faces), ("mesh", mesh)) if v is not None})
    t0 = time.perf_counter()
    image_path = SAMPLE_IMAGE if image_path is None else Path(image_path)
    out_path = Path(out_path)
    inputs = [image_path, *option_files(opts)]
    check_export_output(out_path, inputs)
    if config.mesh and out_path.suffix.lower() != ".ply":
        raise Photo3DError(f"--mesh applies to .ply only; {out_path.suffix} is always a mesh")
    _trimesh()  # a missing extra fails now, not after the depth stage
    photo = load_image(image_path)
    resolve_device(opts.render.device)
    prepared = prepare_photo(photo, image_path.name, opts.scene, opts.depth, engine_options(opts.engine, opts.render),
                             quiet)
    ldi = export_ldi(prepared, opts, quiet)
    w, h = ldi.size
    notice(f"{prepared.name} {w}x{h}, {ldi.layers} layers; {prepared.notes}; LDI in {time.perf_counter() - t0:.1f} s",
           quiet)
    note = write_scene(ldi, out_path, config)
    notice(f"wrote {out_path} ({note}) in {time.perf_counter() - t0:.1f} s", quiet)
    return out_path


def write_scene(ldi: LDI, out_path: str | Path, config: ExportConfig = ExportConfig()) -> str:
    """Write the export of an LDI to ``out_path`` (format by extension, as ``export_scene``;
    the output is not checked against inputs here); returns a note of what it holds."""
    out_path = Path(out_path)
    if out_path.suffix.lower() not in FORMATS:
        raise Photo3DError(f"export output {str(out_path)!r} must end in {', '.join(FORMATS)}")
    files, note = scene_files(ldi, out_path, config)
    remove_stale_partials(out_path.parent, lambda name: name in files)
    _write_files(out_path.parent, files)
    return note


def add_export_parser(sub, add_clip_options: Callable[..., None]) -> argparse.ArgumentParser:
    """Add ``photo3d export`` to the CLI's subparsers; ``add_clip_options`` (``cli``'s)
    adds the scene's options, only those of ``SCENE_OPTIONS``."""
    e = sub.add_parser("export", help="export a photo's 3D scene as .glb/.gltf/.obj/.ply",
                       description="Export a photo's 3D scene (the layered mesh a clip renders) for 3D "
                                   "viewers and tools: .glb/.gltf (textured mesh, the photo's camera), .obj "
                                   "(+ .mtl + texture), .ply (coloured point cloud, or --mesh).",
                       epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_photo_arguments(e, "output .glb, .gltf, .obj or .ply (default: IMAGE name with .glb, here)")
    e.add_argument("--max-faces", type=int, metavar="N",
                   help=f"most triangles; flat regions are merged to fit (default {ExportConfig.max_faces})")
    e.add_argument("--mesh", action="store_true", help=".ply: the vertex-coloured mesh instead of the point cloud")
    add_clip_options(e, only=SCENE_OPTIONS)
    e.add_argument("-q", "--quiet", action="store_true", help="no notes")
    e.set_defaults(handler=_export_command)
    return e


def _export_command(args: argparse.Namespace) -> None:
    image = image_argument(args)
    out = args.output or Path(f"{(image or SAMPLE_IMAGE).stem}.glb")
    flat = {name: getattr(args, name) for name in SCENE_OPTIONS}
    export_scene(image, out, quiet=args.quiet, max_faces=args.max_faces, mesh=args.mesh or None, **flat)
