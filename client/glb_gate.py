"""The gate between a downloaded GLB and Blender's glTF importer.

A GLB comes from a server, so it is untrusted. Blender's importer opens any file a GLB names (an image or
buffer `uri` is joined to the GLB's folder: `../../config/userpref.blend`, `/etc/passwd`, `/dev/zero` all
work), trusts every offset and count, and decodes every image it embeds. `inspect_glb` refuses a GLB before
the importer sees it when it names anything outside itself, when its offsets or indices point outside their
data, when its scene graph loops, when it needs an extension Blender cannot read, or when it is larger than
the limits (triangles, vertices, nodes, image pixels, JSON size).

It reads only the GLB header, the JSON chunk, the chunk headers, the first bytes of each embedded image
(their declared size: `client.imagesize`) and the header of each Draco-compressed mesh (the counts the
decoder allocates for). The BIN payload is never read otherwise, so the check costs a few milliseconds
whatever the mesh's size. Every refusal is a `Sam3dError` with a sentence for a person; no other
exception leaves `inspect_glb`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from . import draco, files, imagesize
from .errors import Code, Sam3dError

GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_BIN_CHUNK = 0x004E4942
_MAX_CHUNKS = 16  # JSON, BIN and a few chunks of unknown kinds (which readers skip)

# Extensions Blender's importer reads, as listed by io_scene_gltf2 (io/imp/gltf2_io_gltf.py,
# `extensions_managed`) in Blender 4.2 and 5.0: a GLB that *requires* anything else does not import there.
# (5.3 adds EXT/KHR_meshopt_compression, KHR_texture_basisu, KHR_materials_dispersion, ..._iridescence and
# KHR_gaussian_splatting; pass `known_extensions` to accept them when running there.)
KNOWN_EXTENSIONS = frozenset({
    "KHR_draco_mesh_compression", "KHR_mesh_quantization", "KHR_texture_transform", "KHR_lights_punctual",
    "KHR_materials_pbrSpecularGlossiness", "KHR_materials_unlit", "KHR_materials_clearcoat",
    "KHR_materials_transmission", "KHR_materials_emissive_strength", "KHR_materials_volume", "KHR_materials_ior",
    "KHR_materials_specular", "KHR_materials_sheen", "KHR_materials_variants", "KHR_materials_anisotropy",
    "KHR_animation_pointer", "EXT_mesh_gpu_instancing", "EXT_texture_webp",
})

_COMPONENT_SIZES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_INDEX_COMPONENTS = {5121: 1, 5123: 2, 5125: 4}
_MAX_INT = 2**53  # larger numbers are not exact in every JSON reader: never a valid count or offset
_MAX_COUNT = 2**32  # accessor and sparse counts
_HUGE = 10**15  # counts are exact below this, which no budget comes near
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_IMAGE_PREFIX = 64 * 1024  # base64 characters decoded first to read an inline image's size


@dataclass
class GlbSummary:
    """What a GLB that passed the gate holds. Counts are per instance (a mesh used by two nodes counts
    twice); `nodes` counts node instances, which is the number of nodes in a well-formed file."""

    triangles: int
    vertices: int
    meshes: int
    nodes: int
    images: int
    image_pixels: int
    json_bytes: int
    bin_bytes: int
    extensions_used: list[str] = field(default_factory=list)


def inspect_glb(
    path: Path,
    *,
    max_triangles: int = 10_000_000,
    max_vertices: int = 10_000_000,
    max_image_pixels: int = 64 * 2**20,
    max_nodes: int = 10_000,
    max_json_bytes: int = 64 * 2**20,
    known_extensions: Collection[str] = KNOWN_EXTENSIONS,
    root: Path | None = None,
) -> GlbSummary:
    """Check the GLB at `path` before Blender imports it; its summary, or `Sam3dError` with code `notGlb`,
    `glbExternalFile`, `glbMalformed`, `glbTooLarge` or `glbUnknownExtension`. Opens no other file; inside `root`
    (the result folder), no folder on the way may be a link either."""
    limits = _Limits(max_triangles, max_vertices, max_image_pixels, max_nodes, max_json_bytes)
    try:  # a regular file, never through a link (a shared folder's file may be a link to anything)
        with os.fdopen(files.open_regular(path, root=root), "rb") as f:
            return _Gate(f, limits, frozenset(known_extensions)).run()
    except Sam3dError:
        raise
    except files.UnsafeFileError as exc:
        raise Sam3dError(Code.NOT_GLB, exc.why) from exc
    except OSError as exc:
        raise Sam3dError(Code.NOT_GLB, "it could not be read") from exc
    except Exception as exc:  # a bug here must still refuse the file, never let it through
        raise Sam3dError(Code.GLB_MALFORMED, "it could not be checked") from exc


@dataclass
class _Limits:
    triangles: int
    vertices: int
    image_pixels: int
    nodes: int
    json_bytes: int


def _not_glb(detail: str) -> NoReturn:
    raise Sam3dError(Code.NOT_GLB, detail)


def _malformed(detail: str) -> NoReturn:
    raise Sam3dError(Code.GLB_MALFORMED, detail)


def _too_large(detail: str) -> NoReturn:
    raise Sam3dError(Code.GLB_TOO_LARGE, detail)


class _Gate:
    def __init__(self, f: BinaryIO, limits: _Limits, known: frozenset[str]) -> None:
        self.f = f
        self.limits = limits
        self.known = known
        self.bin_start = -1  # file offset of the BIN chunk's data, -1 without one
        self.bin_len = 0
        self.json_len = 0

    # -- the container -------------------------------------------------------------------------------

    def run(self) -> GlbSummary:
        doc = self._read_container()
        return _Document(doc, self).check()

    def _read_container(self) -> dict:
        f = self.f
        size = os.fstat(f.fileno()).st_size
        header = f.read(20)
        if len(header) < 12 or header[:4] != GLB_MAGIC:
            _not_glb("it does not start like a GLB file")
        version, length = struct.unpack("<II", header[4:12])
        if version != 2:
            _not_glb(f"it is GLB version {version}, only version 2 is supported")
        if length != size:
            _not_glb(f"it declares {length:,} bytes but holds {size:,}")
        if len(header) < 20:
            _not_glb("it has no JSON chunk")
        json_len, json_type = struct.unpack("<II", header[12:20])
        if json_type != _JSON_CHUNK:
            _not_glb("its first chunk is not JSON")
        if 20 + json_len > size:
            _not_glb(f"its JSON chunk declares {json_len:,} bytes, more than the file holds")
        if json_len % 4:
            _not_glb("its JSON chunk is not aligned to 4 bytes")
        offset, index = 20 + json_len, 1
        while offset < size:
            if index >= _MAX_CHUNKS:
                _not_glb("it has too many chunks")
            if offset + 8 > size:
                _not_glb("a chunk header is cut short")
            f.seek(offset)
            chunk_len, chunk_type = struct.unpack("<II", f.read(8))
            if offset + 8 + chunk_len > size:
                _not_glb(f"chunk {index + 1} declares {chunk_len:,} bytes, more than the file holds")
            if chunk_len % 4:
                _not_glb(f"chunk {index + 1} is not aligned to 4 bytes")
            if chunk_type == _JSON_CHUNK:
                _not_glb("it has a second JSON chunk")
            if chunk_type == _BIN_CHUNK:
                if index != 1:
                    _not_glb("its BIN chunk is not the second chunk")
                self.bin_start, self.bin_len = offset + 8, chunk_len
            offset += 8 + chunk_len
            index += 1
        if json_len > self.limits.json_bytes:
            _too_large(f"its JSON description is {json_len:,} bytes long, more than the limit of "
                       f"{self.limits.json_bytes:,}")
        self.json_len = json_len
        f.seek(20)
        raw = f.read(json_len)
        if len(raw) != json_len:
            _not_glb("it is cut short")
        try:  # as Blender's importer reads it: strict UTF-8, no NaN or Infinity
            doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            _malformed("its JSON description cannot be read")
        if not isinstance(doc, dict):
            _malformed("its JSON description is not an object")
        return doc

    # -- reading a buffer view's bytes (images and Draco headers only) ---------------------------------

    def file_reader(self, start: int, length: int) -> Callable[[int, int], bytes]:
        """read(offset, n) over `length` bytes of the BIN chunk from `start`."""
        f = self.f
        base = self.bin_start + start

        def read(at: int, n: int) -> bytes:
            if at < 0 or n <= 0 or at >= length:
                return b""
            f.seek(base + at)
            return f.read(min(n, length - at))

        return read


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name}")


# -- typed access to the JSON --------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _MAX_INT


def _int(obj: dict, key: str, what: str, default: int | None = None, *, minimum: int = 0,
         maximum: int = _MAX_INT) -> int:
    value = obj.get(key, default)
    if type(value) is not int or not minimum <= value <= maximum:
        _malformed(f"in {what}, the {_words(key)} field is not a valid number")
    return value


def _opt_index(obj: dict, key: str, count: int, what: str, target: str) -> int | None:
    if key not in obj:
        return None
    return _index(obj[key], count, what, target)


def _index(value: Any, count: int, what: str, target: str) -> int:
    if type(value) is not int:
        _malformed(f"{what} refers to {_a(target)} by something that is not a number")
    if not 0 <= value < count:
        if abs(value) >= _HUGE:
            _malformed(f"{what} refers to {_a(target)} that does not exist")
        _malformed(f"{what} refers to {target} {value:,}, which does not exist")
    return value


def _dict(obj: dict, key: str, what: str) -> dict:
    value = obj.get(key, {})
    if not isinstance(value, dict):
        _malformed(f"in {what}, the {_words(key)} field is not an object")
    return value


def _list(obj: dict, key: str, what: str) -> list:
    value = obj.get(key, [])
    if not isinstance(value, list):
        _malformed(f"in {what}, the {_words(key)} field is not a list")
    return value


def _objects(doc: dict, key: str, singular: str) -> list[dict]:
    items = _list(doc, key, "the file")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            _malformed(f"{singular} {i} is not an object")
    return items


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _words(key: str) -> str:
    """`byteLength` → `byte length`: JSON keys read as words."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).lower() if re.fullmatch(r"[A-Za-z]{1,40}", key) else "field"


def _extension_name(name: str) -> str:
    return f"the extension {name}" if re.fullmatch(r"[A-Za-z0-9_]{1,64}", name) else "an extension with an invalid name"


# -- URIs --------------------------------------------------------------------------------------------


def _data_uri(uri: str) -> tuple[str, str] | None:
    """(media type, base64 payload) of a `data:` URI that Blender decodes in memory, else None.
    Blender's importer reads any other URI, including `data:` ones without `;base64,`, as a file path."""
    if not uri.startswith("data:"):
        return None
    sep = uri.find(";base64,")
    if sep < 0:
        return None
    return uri[5:sep], uri[sep + 8:]


def _b64_length(payload: str) -> int | None:
    """The decoded length of a base64 payload, without decoding it; None unless it is canonical base64."""
    if len(payload) % 4 or not _B64.fullmatch(payload):
        return None
    return len(payload) // 4 * 3 - (len(payload) - len(payload.rstrip("=")))


def _b64_slice(payload: str, start: int, length: int) -> bytes:
    """Bytes [start, start + length) of a base64 payload, decoding only the quads that hold them."""
    first, last = start // 3, -(-(start + length) // 3)
    try:
        data = base64.b64decode(payload[4 * first:4 * last])
    except (binascii.Error, ValueError):
        return b""
    skip = start - 3 * first
    return data[skip:skip + length]


def _describe_uri(uri: str) -> str:
    """What kind of outside reference a URI is, in words (the URI itself is never quoted back)."""
    low = uri.strip().lower()
    if low.startswith("data:"):
        return "inline data Blender would read as a file name"
    if low.startswith("file:"):
        return "a local file address"
    if re.match(r"[a-z]:[\\/]", low) or low.startswith(("/", "\\")):
        return "an absolute file path"
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", low)
    if scheme and scheme.group(1) in ("http", "https", "ftp", "ftps"):
        return "a web address"
    if scheme and len(scheme.group(1)) > 1:
        return "an outside address"
    if not low:
        return "an empty file name, which means its own folder"
    return "a file path"


def _external(what: str, uri: str) -> NoReturn:
    raise Sam3dError(Code.GLB_EXTERNAL_FILE, f"{what} refers to {_describe_uri(uri)}")


# -- the JSON document ---------------------------------------------------------------------------------


class _Document:
    def __init__(self, doc: dict, gate: _Gate) -> None:
        self.doc = doc
        self.gate = gate
        self.limits = gate.limits
        self.buffer_lengths: list[int] = []
        self.buffer_payloads: list[str | None] = []  # base64 payload of data: buffers, None for the BIN chunk
        self.views: list[tuple[int, int, int]] = []  # (buffer, byteOffset, byteLength)
        self.accessor_counts: list[int] = []
        self.viewless: list[int] = []  # accessors with no buffer view (zeros, or Draco output)
        self.draco_outputs: set[int] = set()  # accessors the Draco decoder fills (and sizes)
        self.draco_counts: dict[int, tuple[int, int] | None] = {}  # by buffer view
        self.node_meshes: list[int | None] = []
        self.node_copies: list[int | None] = []  # EXT_mesh_gpu_instancing: copies of the node's mesh

    def check(self) -> GlbSummary:
        doc = self.doc
        asset = _dict(doc, "asset", "the file")
        if asset.get("version") != "2.0":
            _malformed("it does not declare glTF version 2.0")
        used = self._extensions()

        buffers = _objects(doc, "buffers", "buffer")
        views = _objects(doc, "bufferViews", "buffer view")
        accessors = _objects(doc, "accessors", "accessor")
        images = _objects(doc, "images", "image")
        samplers = _objects(doc, "samplers", "sampler")
        textures = _objects(doc, "textures", "texture")
        materials = _objects(doc, "materials", "material")
        meshes = _objects(doc, "meshes", "mesh")
        nodes = _objects(doc, "nodes", "node")
        scenes = _objects(doc, "scenes", "scene")
        skins = _objects(doc, "skins", "skin")
        cameras = _objects(doc, "cameras", "camera")
        animations = _objects(doc, "animations", "animation")
        if len(nodes) > self.limits.nodes:
            _too_large(f"it has {len(nodes):,} nodes, more than the limit of {self.limits.nodes:,}")

        self._buffers(buffers)
        self._views(views)
        self._accessors(accessors)
        self._images(images)
        for i, texture in enumerate(textures):
            what = f"texture {i}"
            _opt_index(texture, "source", len(images), what, "image")
            _opt_index(texture, "sampler", len(samplers), what, "sampler")
            for ext in _dict(texture, "extensions", what).values():
                if not isinstance(ext, dict):
                    _malformed(f"an extension of {what} is not an object")
                if "source" in ext:  # EXT_texture_webp, KHR_texture_basisu, MSFT_texture_dds...
                    _index(ext["source"], len(images), what, "image")
        for i, material in enumerate(materials):
            self._material(material, f"material {i}", len(textures))
        mesh_counts = [self._mesh(mesh, f"mesh {i}", len(materials)) for i, mesh in enumerate(meshes)]
        self._viewless_budget()
        lights = self._lights()
        children = self._nodes(nodes, len(meshes), len(cameras), len(skins), lights)
        for i, scene in enumerate(scenes):
            for node in _list(scene, "nodes", f"scene {i}"):
                _index(node, len(nodes), f"scene {i}", "node")
        _opt_index(doc, "scene", len(scenes), "the file", "scene")
        for i, skin in enumerate(skins):
            what = f"skin {i}"
            for joint in _list(skin, "joints", what):
                _index(joint, len(nodes), what, "node")
            _opt_index(skin, "skeleton", len(nodes), what, "node")
            _opt_index(skin, "inverseBindMatrices", len(accessors), what, "accessor")
        for i, animation in enumerate(animations):
            self._animation(animation, f"animation {i}", len(nodes), len(accessors))

        node_count, triangles, vertices = self._graph(nodes, children, mesh_counts)
        pixels = self._image_pixels(images)
        return GlbSummary(
            triangles=triangles, vertices=vertices, meshes=len(meshes), nodes=node_count, images=len(images),
            image_pixels=pixels, json_bytes=self.gate.json_len, bin_bytes=self.gate.bin_len,
            extensions_used=used,
        )

    def _extensions(self) -> list[str]:
        used = _list(self.doc, "extensionsUsed", "the file")
        required = _list(self.doc, "extensionsRequired", "the file")
        for name in [*used, *required]:
            if not isinstance(name, str):
                _malformed("it lists an extension by something that is not a name")
        for name in required:
            if name not in self.gate.known:
                raise Sam3dError(Code.GLB_UNKNOWN_EXTENSION, f"it requires {_extension_name(name)}")
            if name not in used:
                _malformed(f"it requires {_extension_name(name)} without declaring it used")
        return list(used)

    # -- buffers, views, accessors ----------------------------------------------------------------------

    def _buffers(self, buffers: list[dict]) -> None:
        for i, buffer in enumerate(buffers):
            what = f"buffer {i}"
            length = _int(buffer, "byteLength", what)
            uri = buffer.get("uri")
            if uri is None:
                if i != 0:
                    _malformed(f"{what} has no data: only the first buffer may use the data inside the file")
                if self.gate.bin_start < 0:
                    _malformed(f"{what} is the data inside the file, but the file holds none")
                if length > self.gate.bin_len:
                    _malformed(f"{what} declares {length:,} bytes, more than the data inside the file")
                self.buffer_payloads.append(None)
            elif not isinstance(uri, str):
                _malformed(f"the address of {what} is not text")
            else:
                data = _data_uri(uri)
                if data is None:
                    _external(what, uri)
                decoded = _b64_length(data[1])
                if decoded is None:
                    _malformed(f"the inline data of {what} is not valid base64")
                if decoded < length:
                    _malformed(f"{what} declares {length:,} bytes, more than its inline data holds")
                self.buffer_payloads.append(data[1])
            self.buffer_lengths.append(length)

    def _views(self, views: list[dict]) -> None:
        for i, view in enumerate(views):
            what = f"buffer view {i}"
            buffer = _index(view.get("buffer"), len(self.buffer_lengths), what, "buffer")
            offset = _int(view, "byteOffset", what, 0)
            length = _int(view, "byteLength", what)
            if offset + length > self.buffer_lengths[buffer]:
                _malformed(f"{what} reaches past the end of buffer {buffer}")
            if "byteStride" in view:
                _int(view, "byteStride", what, minimum=4, maximum=252)
            for name, ext in _dict(view, "extensions", what).items():
                if not isinstance(ext, dict):
                    _malformed(f"an extension of {what} is not an object")
                if "buffer" in ext and name.endswith("meshopt_compression"):  # compressed data: within its buffer
                    source = _index(ext["buffer"], len(self.buffer_lengths), what, "buffer")
                    if _int(ext, "byteOffset", what, 0) + _int(ext, "byteLength", what) > self.buffer_lengths[source]:
                        _malformed(f"the compressed data of {what} reaches past the end of buffer {source}")
            self.views.append((buffer, offset, length))

    def _view_stride(self, index: int) -> int | None:
        stride = self.doc["bufferViews"][index].get("byteStride")
        return stride if type(stride) is int else None

    def _accessors(self, accessors: list[dict]) -> None:
        for i, accessor in enumerate(accessors):
            what = f"accessor {i}"
            component = accessor.get("componentType")
            kind = accessor.get("type")
            if type(component) is not int or component not in _COMPONENT_SIZES:
                _malformed(f"{what} has an unknown component type")
            if not isinstance(kind, str) or kind not in _COMPONENTS:
                _malformed(f"{what} has an unknown element type")
            count = _int(accessor, "count", what, maximum=_MAX_COUNT)
            element = _element_size(component, kind)
            view = _opt_index(accessor, "bufferView", len(self.views), what, "buffer view")
            if view is not None:
                offset = _int(accessor, "byteOffset", what, 0)
                stride = self._view_stride(view) or element
                needed = offset + (count - 1) * stride + element if count else offset
                if needed > self.views[view][2]:
                    _malformed(f"{what} reads past the end of buffer view {view}")
            else:
                self.viewless.append(i)
            if "sparse" in accessor:
                self._sparse(accessor, what, count, element)
            self.accessor_counts.append(count)

    def _sparse(self, accessor: dict, what: str, count: int, element: int) -> None:
        sparse = _dict(accessor, "sparse", what)
        n = _int(sparse, "count", f"the sparse part of {what}", minimum=1, maximum=count)
        indices = _dict(sparse, "indices", what)
        values = _dict(sparse, "values", what)
        component = indices.get("componentType")
        if type(component) is not int or component not in _INDEX_COMPONENTS:
            _malformed(f"the sparse indices of {what} have an unknown component type")
        for part, size in ((indices, _INDEX_COMPONENTS[component]), (values, element)):
            name = "indices" if part is indices else "values"
            view = _index(part.get("bufferView"), len(self.views), f"the sparse {name} of {what}", "buffer view")
            offset = _int(part, "byteOffset", f"the sparse {name} of {what}", 0)
            if offset + n * size > self.views[view][2]:
                _malformed(f"the sparse {name} of {what} reach past the end of buffer view {view}")

    def _images(self, images: list[dict]) -> None:
        for i, image in enumerate(images):
            what = f"image {i}"
            uri = image.get("uri")
            if uri is not None:
                if "bufferView" in image:
                    _malformed(f"{what} has both an address and a buffer view")
                if not isinstance(uri, str):
                    _malformed(f"the address of {what} is not text")
                data = _data_uri(uri)
                if data is None or not data[0].startswith("image/"):
                    _external(what, uri)
                if _b64_length(data[1]) is None:
                    _malformed(f"the inline data of {what} is not valid base64")
            elif "bufferView" in image:
                _index(image["bufferView"], len(self.views), what, "buffer view")
            else:
                _malformed(f"{what} has no data")

    def _material(self, material: dict, what: str, textures: int) -> None:
        """Every texture reference (`{"index": n}` under a key ending in "Texture"), at any depth, extras
        excepted."""
        stack: list[Any] = [material]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == "extras":  # application data, free-form
                        continue
                    if isinstance(value, dict) and key.endswith("Texture"):
                        _index(value.get("index"), textures, what, "texture")
                    if isinstance(value, dict | list):
                        stack.append(value)
            elif isinstance(item, list):
                stack.extend(v for v in item if isinstance(v, dict | list))

    # -- meshes ----------------------------------------------------------------------------------------

    def _mesh(self, mesh: dict, what: str, materials: int) -> tuple[int, int]:
        """(triangles, vertices) of one instance of a mesh."""
        triangles = vertices = 0
        primitives = _list(mesh, "primitives", what)
        for p, primitive in enumerate(primitives):
            where = f"primitive {p} of {what}"
            if not isinstance(primitive, dict):
                _malformed(f"{where} is not an object")
            attributes = _dict(primitive, "attributes", where)
            for accessor in attributes.values():
                _index(accessor, len(self.accessor_counts), where, "accessor")
            indices = _opt_index(primitive, "indices", len(self.accessor_counts), where, "accessor")
            _opt_index(primitive, "material", materials, where, "material")
            mode = _int(primitive, "mode", where, 4, maximum=6)
            targets = _list(primitive, "targets", where)
            for target in targets:
                if not isinstance(target, dict):
                    _malformed(f"a morph target of {where} is not an object")
                for accessor in target.values():
                    _index(accessor, len(self.accessor_counts), where, "accessor")
            position = attributes.get("POSITION")
            verts = self.accessor_counts[position] if position is not None else 0
            corners = self.accessor_counts[indices] if indices is not None else verts
            tris = corners // 3 if mode == 4 else max(corners - 2, 0) if mode in (5, 6) else 0
            extensions = _dict(primitive, "extensions", where)
            for name, ext in extensions.items():
                if not isinstance(ext, dict):
                    _malformed(f"an extension of {where} is not an object")
                if name == "KHR_materials_variants":
                    for mapping in _list(ext, "mappings", where):
                        if not isinstance(mapping, dict):
                            _malformed(f"a material variant of {where} is not an object")
                        _opt_index(mapping, "material", materials, where, "material")
            compression = extensions.get("KHR_draco_mesh_compression")
            if compression is not None:
                d_tris, d_verts = self._draco(compression, where, attributes, indices)
                tris, verts = max(tris, d_tris), max(verts, d_verts)
            triangles += tris
            # Blender's importer makes every morph target a shape key holding a copy of each vertex, however
            # small the file (200 targets can share one accessor): weigh what it allocates, not what is stored.
            vertices += verts * (1 + len(targets))
        return triangles, vertices

    def _draco(self, compression: dict, where: str, attributes: dict, indices: int | None) -> tuple[int, int]:
        """(faces, vertices) the Draco decoder will allocate for, from the header of its data. Its output
        replaces the accessors' counts in Blender's importer, so these counts are the ones to budget."""
        view = _index(compression.get("bufferView"), len(self.views), f"the Draco data of {where}", "buffer view")
        for draco_id in _dict(compression, "attributes", where).values():
            if not _is_int(draco_id):
                _malformed(f"the Draco data of {where} names an attribute by something that is not a number")
        self.draco_outputs.update(attributes.values())
        if indices is not None:
            self.draco_outputs.add(indices)
        if view not in self.draco_counts:
            self.draco_counts[view] = draco.header_counts(self._view_reader(view), self.views[view][2])
        counts = self.draco_counts[view]
        if counts is None:
            _malformed(f"the Draco-compressed data of {where} cannot be read")
        return counts

    def _view_reader(self, view: int) -> Callable[[int, int], bytes]:
        buffer, offset, length = self.views[view]
        payload = self.buffer_payloads[buffer]
        if payload is None:
            return self.gate.file_reader(offset, length)
        data = _b64_slice(payload, offset, length)

        def read(at: int, n: int) -> bytes:
            return data[at:at + n] if at >= 0 and n > 0 else b""

        return read

    def _viewless_budget(self) -> None:
        """Accessors without data are zeros Blender allocates in full: bound them with the mesh budget."""
        total = sum(self.accessor_counts[i] for i in self.viewless if i not in self.draco_outputs)
        limit = max(self.limits.vertices, 3 * self.limits.triangles)
        if total > limit:
            _too_large(f"it declares {total:,} values without data, more than the limit of {limit:,}")

    # -- nodes -----------------------------------------------------------------------------------------

    def _lights(self) -> int:
        ext = _dict(self.doc, "extensions", "the file").get("KHR_lights_punctual", {})
        if not isinstance(ext, dict):
            _malformed("the lights of the file are not an object")
        return len(_list(ext, "lights", "the file"))

    def _nodes(self, nodes: list[dict], meshes: int, cameras: int, skins: int, lights: int) -> list[list[int]]:
        children: list[list[int]] = []
        edges = 0
        for i, node in enumerate(nodes):
            what = f"node {i}"
            kids = _list(node, "children", what)
            edges += len(kids)
            if edges > self.limits.nodes:
                _too_large(f"it has more than {self.limits.nodes:,} nodes, the limit")
            children.append([_index(k, len(nodes), what, "node") for k in kids])
            mesh = _opt_index(node, "mesh", meshes, what, "mesh")
            _opt_index(node, "camera", cameras, what, "camera")
            _opt_index(node, "skin", skins, what, "skin")
            copies: int | None = None
            for name, ext in _dict(node, "extensions", what).items():
                if not isinstance(ext, dict):
                    _malformed(f"an extension of {what} is not an object")
                if name == "KHR_lights_punctual":
                    _index(ext.get("light"), lights, what, "light")
                if name == "EXT_mesh_gpu_instancing" and mesh is not None:
                    copies = 0
                    for accessor in _dict(ext, "attributes", what).values():
                        index = _index(accessor, len(self.accessor_counts), what, "accessor")
                        copies = max(copies, self.accessor_counts[index])
            self.node_meshes.append(mesh)
            self.node_copies.append(copies)
        return children

    def _graph(self, nodes: list[dict], children: list[list[int]], mesh_counts: list[tuple[int, int]],
               ) -> tuple[int, int, int]:
        """(node instances, triangles, vertices) of the whole scene graph. Refuses a cycle; counts a node
        reached twice twice (Blender refuses those, after this has bounded them), each count saturating
        just past its limit so that a fan-out of shared children costs one visit per node."""
        n = len(nodes)
        state = [0] * n  # 0 unseen, 1 on the current path, 2 done
        inst, tris, verts = [0] * n, [0] * n, [0] * n
        parents = [0] * n
        for kids in children:
            for kid in kids:
                parents[kid] += 1
        for start in range(n):
            if state[start]:
                continue
            state[start] = 1
            stack = [(start, 0)]
            while stack:
                node, next_kid = stack[-1]
                kids = children[node]
                if next_kid < len(kids):
                    stack[-1] = (node, next_kid + 1)
                    kid = kids[next_kid]
                    if state[kid] == 1:
                        _malformed(f"node {kid} is its own ancestor")
                    if state[kid] == 0:
                        state[kid] = 1
                        stack.append((kid, 0))
                    continue
                stack.pop()
                state[node] = 2
                mesh = self.node_meshes[node]
                copies = self.node_copies[node]
                own_tris, own_verts = mesh_counts[mesh] if mesh is not None else (0, 0)
                uses = 1 if copies is None else copies  # instanced: one object per copy, none for the node
                # Every node is under a root (or on a cycle, refused anyway): a subtree over a budget is a
                # file over it, so stop there, before any count can grow past a few times its limit.
                inst[node] = 1 + (copies or 0) + sum(inst[k] for k in kids)
                tris[node] = min(own_tris * uses, _HUGE) + sum(tris[k] for k in kids)
                verts[node] = min(own_verts * uses, _HUGE) + sum(verts[k] for k in kids)
                self._budgets(inst[node], tris[node], verts[node])
        roots = [i for i in range(n) if parents[i] == 0]
        total_nodes = sum(inst[r] for r in roots)
        total_tris = sum(tris[r] for r in roots)
        total_verts = sum(verts[r] for r in roots)
        self._budgets(total_nodes, total_tris, total_verts)
        for i, count in enumerate(parents):
            if count > 1:
                _malformed(f"node {i} is the child of more than one node")
        return total_nodes, total_tris, total_verts

    def _budgets(self, nodes: int, triangles: int, vertices: int) -> None:
        limits = self.limits
        if nodes > limits.nodes:
            _too_large(f"it has more than {limits.nodes:,} nodes, the limit")
        if triangles > limits.triangles:
            _too_large(f"it has {_count(triangles)} triangles, more than the limit of {limits.triangles:,} "
                       "set in the preferences")
        if vertices > limits.vertices:
            _too_large(f"it has {_count(vertices)} vertices, more than the limit of {limits.vertices:,} "
                       "set in the preferences")

    def _animation(self, animation: dict, what: str, nodes: int, accessors: int) -> None:
        samplers = _list(animation, "samplers", what)
        for sampler in samplers:
            if not isinstance(sampler, dict):
                _malformed(f"a sampler of {what} is not an object")
            _index(sampler.get("input"), accessors, what, "accessor")
            _index(sampler.get("output"), accessors, what, "accessor")
        for channel in _list(animation, "channels", what):
            if not isinstance(channel, dict):
                _malformed(f"a channel of {what} is not an object")
            _index(channel.get("sampler"), len(samplers), what, "sampler")
            target = _dict(channel, "target", what)
            _opt_index(target, "node", nodes, what, "node")

    # -- images ----------------------------------------------------------------------------------------

    def _image_pixels(self, images: list[dict]) -> int:
        total = 0
        for i, image in enumerate(images):
            size = self._image_size(image)
            if size is None:
                _malformed(f"the size of image {i} cannot be read from its header")
            total += size[0] * size[1]
            if total > self.limits.image_pixels:
                _too_large(f"its images hold more than {self.limits.image_pixels:,} pixels, the limit")
        return total

    def _image_size(self, image: dict) -> tuple[int, int] | None:
        uri = image.get("uri")
        if isinstance(uri, str):
            data = _data_uri(uri)
            assert data is not None  # checked by _images
            payload = data[1]
            size = imagesize.dimensions(_b64_slice(payload, 0, min(_IMAGE_PREFIX, len(payload) // 4 * 3)))
            if size is None and len(payload) > _IMAGE_PREFIX:  # a JPEG frame header after a large EXIF block
                size = imagesize.dimensions(_b64_slice(payload, 0, len(payload) // 4 * 3))
            return size
        view = image["bufferView"]
        buffer, offset, length = self.views[view]
        if self.buffer_payloads[buffer] is None:
            return imagesize.stream_dimensions(self.gate.f, self.gate.bin_start + offset, length)
        read = self._view_reader(view)
        return imagesize.reader_dimensions(read, length)


def _element_size(component: int, kind: str) -> int:
    """Bytes of one element, matrix columns padded to 4 bytes as glTF lays them out."""
    size = _COMPONENT_SIZES[component]
    if kind in ("MAT2", "MAT3") and size < 4:
        rows = 2 if kind == "MAT2" else 3
        return rows * ((rows * size + 3) // 4 * 4)
    return _COMPONENTS[kind] * size


def _count(value: int) -> str:
    return f"{value:,}" if value < _HUGE else f"more than {_HUGE:,}"
