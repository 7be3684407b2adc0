"""A tiny GLB 2.0 writer for test meshes (stdlib only).

The layout mimics what Runware's SAM 3D returns (written by trimesh): a root node named "world" with one
mesh child "geometry_0", no material. Used by the emulator and by importer tests.
"""

from __future__ import annotations

import json
import math
import struct

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


def _assemble(doc: dict, binary: bytes) -> bytes:
    """Header + JSON chunk (space padded) + BIN chunk (zero padded); declared length = real length."""
    json_bytes = _pad4(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    binary = _pad4(binary, b"\0")
    total = 12 + 8 + len(json_bytes) + 8 + len(binary)
    return b"".join([
        struct.pack("<4sII", GLB_MAGIC, 2, total),
        struct.pack("<II", len(json_bytes), _JSON_CHUNK), json_bytes,
        struct.pack("<II", len(binary), _BIN_CHUNK), binary,
    ])


def make_glb(positions, indices, colors=None, root_name="world", root_matrix=None) -> bytes:
    """Build a GLB: positions [(x, y, z)], triangle indices, optional RGB(A) floats 0..1 as COLOR_0."""
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
        attributes["COLOR_0"] = 2

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
    return _assemble(doc, binary)


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
