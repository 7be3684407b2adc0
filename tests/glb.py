"""A tiny GLB 2.0 writer for test meshes (stdlib only).

The layout mimics what Runware's SAM 3D returns (written by trimesh): a root node named "world" with one
mesh child "geometry_0", no material. Used by the emulator and by importer tests.

Hostile builders, for tests that set `emu.result_bytes` to what a broken or malicious server might send:
`glb_with_image_uri`, `glb_with_buffer_uri`, `glb_with_unknown_required_extension`, `glb_with_triangles`
(huge but cheap to build) and `glb_out_of_range_accessor`.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import zlib
from array import array

GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_BIN_CHUNK = 0x004E4942
_FLOAT, _UINT16, _UINT32 = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def _flatten_indices(indices) -> list[int]:
    """Accept a flat index list or a list of triangles."""
    flat: list[int] = []
    for item in indices:
        if isinstance(item, int):
            flat.append(item)
        else:
            flat.extend(int(i) for i in item)
    return flat


def _assemble(doc: dict, binary: bytes | None) -> bytes:
    """Header + JSON chunk (space padded) + BIN chunk (zero padded; none when `binary` is None);
    declared length = real length."""
    json_bytes = _pad4(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    parts = [b"", struct.pack("<II", len(json_bytes), _JSON_CHUNK), json_bytes]
    if binary is not None:
        binary = _pad4(binary, b"\0")
        parts += [struct.pack("<II", len(binary), _BIN_CHUNK), binary]
    parts[0] = struct.pack("<4sII", GLB_MAGIC, 2, 12 + sum(len(p) for p in parts))
    return b"".join(parts)


def make_glb(positions, indices, colors=None, root_name="world", root_matrix=None) -> bytes:
    """Build a GLB: positions [(x, y, z)], triangle indices, optional RGB(A) floats 0..1 as COLOR_0."""
    return _assemble(*_document(positions, indices, colors, root_name=root_name, root_matrix=root_matrix))


def _document(positions, indices, colors=None, uvs=None, root_name="world", root_matrix=None):
    """(glTF JSON document, BIN chunk) of one mesh; `uvs` [(u, v)] become TEXCOORD_0."""
    positions = [tuple(float(c) for c in p) for p in positions]
    flat = _flatten_indices(indices)
    if len(flat) % 3 or any(i < 0 or i >= len(positions) for i in flat):
        raise ValueError("indices must be triangles referencing existing vertices")
    index_type, index_fmt = (_UINT16, "H") if len(positions) < 65536 else (_UINT32, "I")

    chunks: list[bytes] = []
    views: list[dict] = []

    def add_view(data: bytes, target: int) -> int:
        offset = sum(len(c) for c in chunks)
        chunks.append(_pad4(data, b"\0"))  # keeps every view 4-byte aligned
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": target})
        return len(views) - 1

    idx_view = add_view(struct.pack(f"<{len(flat)}{index_fmt}", *flat), _ELEMENT_ARRAY_BUFFER)
    pos_view = add_view(struct.pack(f"<{3 * len(positions)}f", *(c for p in positions for c in p)),
                        _ARRAY_BUFFER)
    accessors = [
        {"bufferView": idx_view, "componentType": index_type, "count": len(flat), "type": "SCALAR",
         "min": [min(flat, default=0)], "max": [max(flat, default=0)]},
        {"bufferView": pos_view, "componentType": _FLOAT, "count": len(positions), "type": "VEC3",
         "min": [min(p[k] for p in positions) for k in range(3)],
         "max": [max(p[k] for p in positions) for k in range(3)]},
    ]
    attributes = {"POSITION": 1}
    if colors is not None:
        rgba = [tuple(float(c) for c in col) + ((1.0,) if len(col) == 3 else ()) for col in colors]
        if len(rgba) != len(positions):
            raise ValueError("one colour per vertex")
        col_view = add_view(struct.pack(f"<{4 * len(rgba)}f", *(c for col in rgba for c in col)),
                            _ARRAY_BUFFER)
        accessors.append({"bufferView": col_view, "componentType": _FLOAT, "count": len(rgba),
                          "type": "VEC4"})
        attributes["COLOR_0"] = len(accessors) - 1
    if uvs is not None:
        uvs = [(float(u), float(v)) for u, v in uvs]
        if len(uvs) != len(positions):
            raise ValueError("one UV per vertex")
        uv_view = add_view(struct.pack(f"<{2 * len(uvs)}f", *(c for uv in uvs for c in uv)), _ARRAY_BUFFER)
        accessors.append({"bufferView": uv_view, "componentType": _FLOAT, "count": len(uvs), "type": "VEC2"})
        attributes["TEXCOORD_0"] = len(accessors) - 1

    root: dict = {"name": root_name, "children": [1]}
    if root_matrix is not None:
        root["matrix"] = [float(v) for v in root_matrix]  # column-major 4x4, as glTF wants
    binary = b"".join(chunks)
    doc = {
        "asset": {"version": "2.0", "generator": "https://github.com/mikedh/trimesh"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [root, {"name": "geometry_0", "mesh": 0}],
        "meshes": [{"name": "geometry_0",
                    "primitives": [{"attributes": attributes, "indices": 0, "mode": 4}]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    return doc, binary


def ellipsoid(radii=(0.4, 0.48, 0.3), segments=32, rings=20):
    """A closed UV ellipsoid (poles shared, no seam duplicates), outward CCW winding.

    Unequal radii and a height-dependent colour make orientation errors visible: Y (glTF up) is longest.
    """
    rx, ry, rz = radii
    positions = [(0.0, ry, 0.0)]
    for r in range(1, rings):
        theta = math.pi * r / rings
        for s in range(segments):
            phi = 2 * math.pi * s / segments
            positions.append((rx * math.sin(theta) * math.cos(phi), ry * math.cos(theta),
                              -rz * math.sin(theta) * math.sin(phi)))
    positions.append((0.0, -ry, 0.0))
    bottom = len(positions) - 1

    def ring(r, s):
        return 1 + (r - 1) * segments + s % segments

    tris = [(0, ring(1, s), ring(1, s + 1)) for s in range(segments)]
    for r in range(1, rings - 1):
        for s in range(segments):
            a, b, c, d = ring(r, s), ring(r + 1, s), ring(r + 1, s + 1), ring(r, s + 1)
            tris += [(a, b, c), (a, c, d)]
    tris += [(ring(rings - 1, s), bottom, ring(rings - 1, s + 1)) for s in range(segments)]
    colors = [(0.5 + p[1] / (2 * ry), 0.3 + 0.4 * (p[0] / rx) ** 2, 0.5 - p[1] / (2 * ry), 1.0)
              for p in positions]
    return positions, tris, colors


def canonical_glb() -> bytes:
    """The emulator's default result: a coloured ellipsoid in the unit cube, Y-up, under "world"."""
    positions, tris, colors = ellipsoid()
    return make_glb(positions, tris, colors)


def _png(width: int, height: int, pixel) -> bytes:
    """An RGB PNG whose pixel (x, y) is `pixel(x, y)` (three bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# What the PBR result's material says, so tests can check each reached Blender's Principled BSDF.
PBR_FACTORS = {"metallic": 0.25, "roughness": 0.6, "emissive": (0.1, 0.2, 0.3)}


def pbr_glb() -> bytes:
    """What the PBR engines (TRELLIS.2, Hunyuan, Tripo, Rodin, Meshy) send: a textured mesh with no vertex
    colours and a metallic-roughness material (base colour, metallic-roughness, normal and emissive textures,
    embedded as PNGs), under a root node, as those engines' GLBs are."""
    positions, tris, _ = ellipsoid((0.5, 0.3, 0.2))
    uvs = [(0.5 + math.atan2(p[2], p[0]) / (2 * math.pi), 0.5 - math.asin(max(-1.0, min(1.0, p[1] / 0.3))) / math.pi)
           for p in positions]
    doc, binary = _document(positions, tris, uvs=uvs, root_name="engine_root")
    textures = [_png(16, 16, lambda x, y: (200, 40 + 8 * x, 30 + 8 * y)),  # base colour
                _png(8, 8, lambda x, y: (0, 150, 60)),  # occlusion, roughness (G), metallic (B)
                _png(8, 8, lambda x, y: (128, 128, 255)),  # a flat normal map
                _png(8, 8, lambda x, y: (255, 255, 255))]  # emission
    for png in textures:
        doc["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(png)})
        binary += _pad4(png, b"\0")
    first = len(doc["bufferViews"]) - len(textures)
    doc["images"] = [{"bufferView": first + i, "mimeType": "image/png", "name": name}
                     for i, name in enumerate(("baseColor", "metallicRoughness", "normal", "emissive"))]
    doc["textures"] = [{"source": i} for i in range(len(textures))]
    doc["materials"] = [{"name": "engine_pbr", "pbrMetallicRoughness": {
        "baseColorTexture": {"index": 0}, "metallicRoughnessTexture": {"index": 1},
        "metallicFactor": PBR_FACTORS["metallic"], "roughnessFactor": PBR_FACTORS["roughness"]},
        "normalTexture": {"index": 2}, "emissiveTexture": {"index": 3},
        "emissiveFactor": list(PBR_FACTORS["emissive"])}]
    doc["meshes"][0]["primitives"][0]["material"] = 0
    doc["buffers"] = [{"byteLength": len(binary)}]
    return _assemble(doc, binary)


def _chunks(data: bytes) -> list[tuple[int, bytes]]:
    magic, version, length = struct.unpack_from("<4sII", data)
    if magic != GLB_MAGIC or version != 2 or length != len(data):
        raise ValueError("not a GLB 2.0 file")
    out, offset = [], 12
    while offset < length:
        size, kind = struct.unpack_from("<II", data, offset)
        out.append((kind, data[offset + 8:offset + 8 + size]))
        offset += 8 + size
    return out


def read_glb(data: bytes) -> tuple[dict, bytes]:
    """(JSON document, BIN chunk) of a GLB, for tests."""
    chunks = _chunks(data)
    doc = json.loads(chunks[0][1])
    binary = next((c for kind, c in chunks[1:] if kind == _BIN_CHUNK), b"")
    return doc, binary


def pad_glb(data: bytes, size: int) -> bytes:
    """A still-valid GLB of about `size` bytes (never smaller than `data`): zero bytes appended to the
    BIN chunk, buffer 0's byteLength and the header's length updated to match."""
    doc, binary = read_glb(data)
    if not doc.get("buffers"):
        doc["buffers"] = [{"byteLength": 0}]
    bin_len = len(binary)
    for _ in range(5):  # the JSON length depends on the digits of byteLength: iterate until stable
        doc["buffers"][0]["byteLength"] = bin_len
        json_len = len(_pad4(json.dumps(doc, separators=(",", ":")).encode(), b" "))
        wanted = (size - 28 - json_len) // 4 * 4
        if wanted <= bin_len:
            break
        bin_len = wanted
    bin_len = max(bin_len, len(binary))
    doc["buffers"][0]["byteLength"] = bin_len
    return _assemble(doc, binary + b"\0" * (bin_len - len(binary)))


# ---------------------------------------------------------------- hostile GLBs (what a bad server might send)

_QUAD = [(-0.5, -0.5, 0.0), (0.5, -0.5, 0.0), (0.5, 0.5, 0.0), (-0.5, 0.5, 0.0)]
_QUAD_TRIS = [(0, 1, 2), (0, 2, 3)]
_QUAD_UVS = [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]


def glb_with_image_uri(uri: str) -> bytes:
    """A textured quad whose base-colour image is the external `uri` (an absolute path, "../../x.blend",
    "file:///etc/passwd", "http://…"): a GLB must never make its importer read or fetch anything else."""
    doc, binary = _document(_QUAD, _QUAD_TRIS, uvs=_QUAD_UVS)
    doc["meshes"][0]["primitives"][0]["material"] = 0
    doc["materials"] = [{"name": "hostile", "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    doc["textures"] = [{"sampler": 0, "source": 0}]
    doc["samplers"] = [{}]
    doc["images"] = [{"uri": uri}]
    return _assemble(doc, binary)


def glb_with_buffer_uri(uri: str, byte_length: int | None = None) -> bytes:
    """A quad whose buffer 0 is the external `uri` (e.g. "/dev/zero", "../../secret.bin") instead of the BIN
    chunk, which is left out; `byte_length` overrides the declared size (default: the real geometry's)."""
    doc, binary = _document(_QUAD, _QUAD_TRIS)
    doc["buffers"][0] = {"byteLength": len(binary) if byte_length is None else byte_length, "uri": uri}
    return _assemble(doc, None)


def glb_with_unknown_required_extension(name: str = "EXT_hostile_unknown") -> bytes:
    """The canonical mesh, but listing `name` in extensionsUsed and extensionsRequired (a loader must refuse)."""
    positions, tris, colors = ellipsoid(segments=8, rings=6)
    doc, binary = _document(positions, tris, colors)
    doc["extensionsUsed"] = [name]
    doc["extensionsRequired"] = [name]
    doc["meshes"][0]["primitives"][0]["extensions"] = {name: {}}
    return _assemble(doc, binary)


def glb_out_of_range_accessor(kind: str = "count") -> bytes:
    """A quad with one lie that makes a naive reader go out of bounds:
    "count": the POSITION accessor claims a million vertices in a 48-byte bufferView;
    "index": an index points past the last vertex (min/max say so honestly);
    "offset": the POSITION bufferView starts past the end of the buffer."""
    doc, binary = _document(_QUAD, _QUAD_TRIS)
    position = doc["accessors"][1]
    if kind == "count":
        position["count"] = 1_000_000
    elif kind == "index":
        flat = [0, 1, 2, 0, 2, 65535]  # far past vertex 3
        binary = struct.pack("<6H", *flat) + binary[12:]
        doc["accessors"][0]["max"] = [max(flat)]
    elif kind == "offset":
        doc["bufferViews"][position["bufferView"]]["byteOffset"] = 1 << 20
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return _assemble(doc, binary)


def glb_with_triangles(n: int) -> bytes:
    """A valid GLB of exactly `n` distinct, non-degenerate triangles, fast and without Python lists
    (12 million triangles: about 72 MB, built in well under a few seconds).

    The vertices (at most 65536, so indices stay uint16) zig-zag along X in the unit cube; triangle (i, i+1, i+s)
    for stride s = 2, 3, … until n are made: stride 2 alone is a clean triangle strip."""
    if n < 1:
        raise ValueError("n must be positive")
    v = min(65536, n + 2)
    if n > sum(v - s for s in range(2, v)):
        raise ValueError("too many triangles for 65536 vertices")
    base = array("H", range(v))
    indices = array("H")
    remaining, stride = n, 2
    while remaining:
        m = min(v - stride, remaining)
        block = array("H", bytes(6 * m))
        block[0::3] = base[:m]
        block[1::3] = base[1:m + 1]
        block[2::3] = base[stride:stride + m]
        indices.extend(block)
        remaining -= m
        stride += 1
    positions = array("f", bytes(12 * v))
    step = 1.0 / (v - 1)
    positions[0::3] = array("f", (i * step - 0.5 for i in range(v)))
    positions[1::3] = array("f", ((i & 1) - 0.5 for i in range(v)))
    if sys.byteorder == "big":  # glTF is little-endian
        indices.byteswap()
        positions.byteswap()
    index_bytes = _pad4(indices.tobytes(), b"\0")
    del indices
    doc = {
        "asset": {"version": "2.0", "generator": "tests/glb.py glb_with_triangles"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "world", "children": [1]}, {"name": "geometry_0", "mesh": 0}],
        "meshes": [{"name": "geometry_0", "primitives": [{"attributes": {"POSITION": 1}, "indices": 0, "mode": 4}]}],
        "accessors": [
            {"bufferView": 0, "componentType": _UINT16, "count": 3 * n, "type": "SCALAR", "min": [0], "max": [v - 1]},
            {"bufferView": 1, "componentType": _FLOAT, "count": v, "type": "VEC3",
             "min": [-0.5, -0.5, 0.0], "max": [0.5, 0.5, 0.0]},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 6 * n, "target": _ELEMENT_ARRAY_BUFFER},
            {"buffer": 0, "byteOffset": len(index_bytes), "byteLength": 12 * v, "target": _ARRAY_BUFFER},
        ],
        "buffers": [{"byteLength": len(index_bytes) + 12 * v}],
    }
    return _assemble(doc, index_bytes + positions.tobytes())
