"""The gate before Blender's glTF importer: real GLBs pass with their exact counts, hostile ones are refused
with a sentence for a person, and nothing but the GLB itself is ever opened."""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import struct
import sys
import time
import zlib
from pathlib import Path

import pytest

from client.errors import SENTENCES, RunwareError
from client.glb_gate import GlbSummary, inspect_glb
from tests.glb import canonical_glb, ellipsoid, make_glb, read_glb

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "human_object" / "sam3d_output_0.glb"
DATA = ROOT / "tests" / "data"
CODES = ("notGlb", "glbExternalFile", "glbMalformed", "glbTooLarge", "glbUnknownExtension")


# -- a GLB builder for hostile files ------------------------------------------------------------------


def pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def assemble(doc: dict, binary: bytes | None, *, json_bytes: bytes | None = None) -> bytes:
    """Header + JSON chunk + BIN chunk (when `binary` is not None), lengths as declared."""
    raw = pad4(json_bytes if json_bytes is not None else json.dumps(doc).encode(), b" ")
    chunks = struct.pack("<II", len(raw), 0x4E4F534A) + raw
    if binary is not None:
        binary = pad4(binary, b"\0")
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def mutated(change, base: bytes | None = None) -> bytes:
    """canonical_glb() (or `base`) with its JSON changed in place by `change(doc)`; the BIN chunk kept."""
    doc, binary = read_glb(base if base is not None else canonical_glb())
    change(doc)
    return assemble(doc, binary)


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def with_image(image_bytes: bytes, base: bytes | None = None) -> bytes:
    """A GLB whose BIN chunk ends with `image_bytes`, held by a new buffer view used by a material."""
    doc, binary = read_glb(base if base is not None else canonical_glb())
    offset = len(binary)
    binary = binary + image_bytes
    doc["buffers"][0]["byteLength"] = len(binary)
    doc["bufferViews"].append({"buffer": 0, "byteOffset": offset, "byteLength": len(image_bytes)})
    doc["images"] = [{"bufferView": len(doc["bufferViews"]) - 1, "mimeType": "image/png"}]
    doc["textures"] = [{"source": 0}]
    doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    doc["meshes"][0]["primitives"][0]["material"] = 0
    return assemble(doc, binary)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def draco_glb(header: bytes, accessor_count: int = 3) -> bytes:
    """A GLB with one Draco-compressed primitive whose bitstream is `header` (then filler)."""
    payload = header + b"\0" * 64
    doc = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_draco_mesh_compression"],
        "extensionsRequired": ["KHR_draco_mesh_compression"],
        "scenes": [{"nodes": [0]}], "scene": 0,
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{
            "attributes": {"POSITION": 0}, "indices": 1, "mode": 4,
            "extensions": {"KHR_draco_mesh_compression": {"bufferView": 0, "attributes": {"POSITION": 0}}}}]}],
        "accessors": [{"componentType": 5126, "count": accessor_count, "type": "VEC3"},
                      {"componentType": 5123, "count": accessor_count, "type": "SCALAR"}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(payload)}],
        "buffers": [{"byteLength": len(payload)}],
    }
    return assemble(doc, payload)


def edgebreaker(vertices: int, faces: int, *, flags: int = 0, metadata: bytes = b"") -> bytes:
    """Draco 2.2 edgebreaker header: traversal, vertices, faces, attribute data, symbols, split symbols."""
    return (b"DRACO" + bytes([2, 2, 1, 1]) + struct.pack("<H", flags) + metadata + b"\0" + varint(vertices)
            + varint(faces) + b"\x01" + varint(faces) + varint(0))


def write(tmp_path: Path, data: bytes, name: str = "result.glb") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


NOISE = ("'", '"', "None", "Traceback", "<", ">", "{", "}", "[", "]", "\\x", "Error", "exception", "dict", "list[")


def refused(tmp_path: Path, data: bytes, code: str, *words: str, **limits) -> RunwareError:
    """inspect_glb refuses `data` with `code`; the sentence is ours, clean, and names the problem."""
    path = write(tmp_path, data)
    with pytest.raises(RunwareError) as info:
        inspect_glb(path, **limits)
    error = info.value
    assert error.code == code, error.sentence
    sentence = error.sentence
    assert sentence.startswith(SENTENCES[code]), sentence
    for noise in NOISE:
        assert noise not in sentence, (noise, sentence)
    for word in words:
        assert word.lower() in sentence.lower(), (word, sentence)
    return error


# -- GLBs that pass --------------------------------------------------------------------------------------


def test_every_code_has_its_own_sentence():
    for code in CODES:
        assert code in SENTENCES
        assert "Runware refused" not in SENTENCES[code]
    assert len({SENTENCES[c] for c in CODES}) == len(CODES)


def test_the_real_sample_passes_with_its_exact_counts():
    summary = inspect_glb(SAMPLE)
    assert isinstance(summary, GlbSummary)
    assert summary.triangles == 227_278
    assert summary.vertices == 113_498
    assert (summary.meshes, summary.nodes, summary.images, summary.image_pixels) == (1, 2, 0, 0)
    assert summary.json_bytes == 796
    assert summary.bin_bytes == SAMPLE.stat().st_size - 12 - 8 - 796 - 8
    assert summary.extensions_used == []


def test_the_sample_is_checked_in_a_few_milliseconds():
    inspect_glb(SAMPLE)
    started = time.perf_counter()
    for _ in range(20):
        inspect_glb(SAMPLE)
    assert (time.perf_counter() - started) / 20 < 0.05  # generous: it takes ~0.1 ms; the import ~100 ms


def test_generated_meshes_pass(tmp_path):
    positions, tris, colors = ellipsoid()
    summary = inspect_glb(write(tmp_path, canonical_glb()))
    assert (summary.triangles, summary.vertices, summary.nodes) == (len(tris), len(positions), 2)
    box = make_glb([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], [(0, 1, 2), (0, 2, 3), (0, 3, 1), (1, 3, 2)],
                   root_matrix=[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -2.5, 1])
    assert inspect_glb(write(tmp_path, box, "box.glb")).triangles == 4
    big = make_glb([(i % 300, i // 300, 0) for i in range(70_000)], [(0, 1, 2), (69_997, 69_998, 69_999)])
    assert inspect_glb(write(tmp_path, big, "big.glb")).vertices == 70_000  # 32-bit indices


@pytest.mark.parametrize(("name", "triangles", "images", "pixels"), [
    ("draco_sphere.glb", 960, 0, 0), ("textured_sphere.glb", 960, 1, 256), ("two_parts.glb", 24, 0, 0),
    ("rotated_box.glb", 12, 0, 0)])
def test_blenders_own_glbs_pass(name, triangles, images, pixels):
    summary = inspect_glb(DATA / name)
    assert (summary.triangles, summary.images, summary.image_pixels) == (triangles, images, pixels)


def test_draco_counts_come_from_the_draco_header():
    summary = inspect_glb(DATA / "draco_sphere.glb")
    assert summary.extensions_used == ["KHR_draco_mesh_compression"]
    assert summary.vertices == 1984


def test_inline_data_buffers_and_images_pass(tmp_path):
    doc, binary = read_glb(canonical_glb())
    image = png_header(40, 30) + b"\0" * 20
    uri = "data:application/octet-stream;base64," + base64.b64encode(binary + image).decode()
    doc["buffers"] = [{"byteLength": len(binary) + len(image), "uri": uri}]
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(image)})
    doc["images"] = [{"bufferView": len(doc["bufferViews"]) - 1},
                     {"uri": "data:image/png;base64," + base64.b64encode(png_header(8, 8)).decode()}]
    summary = inspect_glb(write(tmp_path, assemble(doc, None)))
    assert (summary.images, summary.image_pixels, summary.bin_bytes) == (2, 40 * 30 + 64, 0)


def test_an_embedded_image_is_sized_from_its_header(tmp_path):
    summary = inspect_glb(write(tmp_path, with_image(png_header(640, 480) + b"\0" * 100)))
    assert (summary.images, summary.image_pixels) == (1, 640 * 480)


def test_gpu_instancing_multiplies_the_mesh(tmp_path):
    def change(doc):
        doc["accessors"].append({"componentType": 5126, "count": 5, "type": "VEC3"})
        doc["nodes"][1]["extensions"] = {"EXT_mesh_gpu_instancing": {"attributes": {
            "TRANSLATION": len(doc["accessors"]) - 1}}}
    base = inspect_glb(write(tmp_path, canonical_glb(), "base.glb"))
    summary = inspect_glb(write(tmp_path, mutated(change)))
    assert summary.triangles == 5 * base.triangles
    assert summary.nodes == base.nodes + 5


# -- files outside the GLB -------------------------------------------------------------------------------


def _image_uri(uri):
    def change(doc):
        doc["images"] = [{"uri": uri}]
        doc["textures"] = [{"source": 0}]
    return change


@pytest.mark.parametrize(("uri", "words"), [
    ("/etc/passwd", ["image 0", "absolute file path"]),
    ("../../../../config/userpref.blend", ["image 0", "file path"]),
    ("file:///etc/passwd", ["image 0", "local file address"]),
    ("http://example.com/texture.png", ["image 0", "web address"]),
    ("C:\\Users\\me\\secret.png", ["image 0", "absolute file path"]),
    ("texture.png", ["image 0", "file path"]),
    ("", ["image 0", "own folder"]),
    ("data:image/png,notbase64", ["image 0", "read as a file name"]),
    ("data:application/octet-stream;base64,AAAA", ["image 0"]),
])
def test_images_pointing_outside_are_refused(tmp_path, uri, words):
    refused(tmp_path, mutated(_image_uri(uri)), "glbExternalFile", *words)


def test_buffer_pointing_at_dev_zero_is_refused(tmp_path):
    def change(doc):
        doc["buffers"][0]["uri"] = "/dev/zero"
    refused(tmp_path, mutated(change), "glbExternalFile", "buffer 0", "absolute file path")


def test_a_second_buffer_with_a_relative_uri_is_refused(tmp_path):
    def change(doc):
        doc["buffers"].append({"byteLength": 1024, "uri": "more.bin"})
        doc["bufferViews"].append({"buffer": 1, "byteLength": 1024})
    refused(tmp_path, mutated(change), "glbExternalFile", "buffer 1", "file path")


def test_only_the_glb_itself_is_ever_opened(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_header(4, 4))
    opened: list[str] = []
    recording = [False]

    def hook(event, args):
        if recording[0] and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.path.realpath(os.fsdecode(args[0])))

    sys.addaudithook(hook)  # cannot be removed: it records only while `recording` is set

    def change(doc):
        doc["images"] = [{"uri": str(secret)}, {"uri": "secret.png"}]
        doc["buffers"].append({"byteLength": 8, "uri": "secret.png"})
    hostile = write(tmp_path, mutated(change), "hostile.glb")
    fine = write(tmp_path, with_image(png_header(4, 4)), "fine.glb")
    recording[0] = True
    try:
        with pytest.raises(RunwareError):
            inspect_glb(hostile)
        inspect_glb(fine)
        inspect_glb(DATA / "textured_sphere.glb")
    finally:
        recording[0] = False
    assert opened == [str(hostile.resolve()), str(fine.resolve()), str((DATA / "textured_sphere.glb").resolve())]


# -- damaged files -------------------------------------------------------------------------------------


def test_an_accessor_past_its_view_is_refused(tmp_path):
    def change(doc):
        doc["accessors"][1]["count"] += 1
    refused(tmp_path, mutated(change), "glbMalformed", "accessor 1", "buffer view")


def test_an_accessor_offset_past_its_view_is_refused(tmp_path):
    def change(doc):
        doc["accessors"][0]["byteOffset"] = 4
    refused(tmp_path, mutated(change), "glbMalformed", "accessor 0")


def test_a_stride_reaching_past_the_view_is_refused(tmp_path):
    def change(doc):
        doc["bufferViews"][1]["byteStride"] = 16  # 12-byte positions read 16 apart
    refused(tmp_path, mutated(change), "glbMalformed", "accessor 1")


def test_a_view_past_its_buffer_is_refused(tmp_path):
    def change(doc):
        doc["bufferViews"][1]["byteOffset"] = doc["buffers"][0]["byteLength"]
    refused(tmp_path, mutated(change), "glbMalformed", "buffer view 1", "buffer 0")


def test_buffer_zero_longer_than_the_bin_chunk_is_refused(tmp_path):
    def change(doc):
        doc["buffers"][0]["byteLength"] += 4096
    refused(tmp_path, mutated(change), "glbMalformed", "buffer 0", "more than")


def test_an_inline_buffer_shorter_than_declared_is_refused(tmp_path):
    def change(doc):
        doc["buffers"].append({"byteLength": 100, "uri": "data:application/octet-stream;base64,AAAA"})
    refused(tmp_path, mutated(change), "glbMalformed", "buffer 1", "inline data")


def test_sparse_parts_out_of_range_are_refused(tmp_path):
    def sparse(indices_offset=0, count=3):
        def change(doc):
            doc["accessors"][1]["sparse"] = {
                "count": count, "indices": {"bufferView": 0, "byteOffset": indices_offset, "componentType": 5123},
                "values": {"bufferView": 1}}
        return change
    assert inspect_glb(write(tmp_path, mutated(sparse()), "ok.glb")).vertices > 0
    length = read_glb(canonical_glb())[0]["bufferViews"][0]["byteLength"]
    refused(tmp_path, mutated(sparse(indices_offset=length - 2)), "glbMalformed", "sparse indices", "accessor 1")
    refused(tmp_path, mutated(sparse(count=10**6)), "glbMalformed", "sparse")

    def bad_view(doc):
        sparse()(doc)
        doc["accessors"][1]["sparse"]["values"]["bufferView"] = 99
    refused(tmp_path, mutated(bad_view), "glbMalformed", "buffer view 99", "does not exist")


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["accessors"][0].update(bufferView=7), ["accessor 0", "buffer view 7"]),
    (lambda d: d["bufferViews"][0].update(buffer=3), ["buffer view 0", "buffer 3"]),
    (lambda d: d["meshes"][0]["primitives"][0].update(indices=9), ["mesh 0", "accessor 9"]),
    (lambda d: d["meshes"][0]["primitives"][0]["attributes"].update(POSITION=-1), ["accessor -1"]),
    (lambda d: d["nodes"][1].update(mesh=4), ["node 1", "mesh 4"]),
    (lambda d: d["nodes"][0].update(children=[1, 5]), ["node 0", "node 5"]),
    (lambda d: d["scenes"][0].update(nodes=[2]), ["scene 0", "node 2"]),
    (lambda d: d.update(scene=3), ["scene 3"]),
    (lambda d: d["meshes"][0]["primitives"][0].update(material=0), ["material 0"]),
    (lambda d: d.update(textures=[{"source": 2}]), ["texture 0", "image 2"]),
    (lambda d: d.update(textures=[{"sampler": 0}]), ["texture 0", "sampler 0"]),
    (lambda d: d.update(materials=[{"normalTexture": {"index": 1}}]), ["material 0", "texture 1"]),
    (lambda d: d.update(materials=[{"extensions": {"KHR_materials_clearcoat": {"clearcoatTexture": {"index": 0}}}}]),
     ["material 0", "texture 0"]),
    (lambda d: d.update(images=[{"bufferView": 12}]), ["image 0", "buffer view 12"]),
    (lambda d: d.update(skins=[{"joints": [0, 6]}]), ["skin 0", "node 6"]),
    (lambda d: d.update(animations=[{"samplers": [{"input": 0, "output": 8}], "channels": []}]),
     ["animation 0", "accessor 8"]),
    (lambda d: d["nodes"][0].update(camera=0), ["node 0", "camera 0"]),
])
def test_indices_to_missing_objects_are_refused(tmp_path, change, words):
    refused(tmp_path, mutated(change), "glbMalformed", *words, "does not exist")


@pytest.mark.parametrize("value", ["12", True, -1, 1.0, 1e300, 2**70, None, [3], {"n": 3}])
def test_wrong_types_are_refused(tmp_path, value):
    def change(doc):
        doc["accessors"][1]["count"] = value
    refused(tmp_path, mutated(change), "glbMalformed", "accessor 1")

    def index(doc):
        doc["accessors"][0]["bufferView"] = value
    refused(tmp_path, mutated(index), "glbMalformed", "accessor 0")


@pytest.mark.parametrize(("raw", "words"), [
    (b"{not json", ["cannot be read"]),
    (b"[1, 2, 3]", ["not an object"]),
    (b'{"asset": {"version": "2.0"}, "accessors": [{"count": NaN}]}', ["cannot be read"]),
    (b'{"asset": {"version": "2.0"}, "nodes": "lots"}', ["nodes"]),
    (b'{"asset": {"version": "2.0"}, "nodes": [3]}', ["node 0", "not an object"]),
    (b'{"asset": {"version": "1.0"}}', ["version 2.0"]),
    (b"\xef\xbb\xbf{}", ["cannot be read"]),  # a byte order mark: Blender's reader refuses it too
    (b"\xff\xfe{}", ["cannot be read"]),
    (b"[" * 100_000 + b"]" * 100_000, ["cannot be read"]),
])
def test_broken_json_is_refused(tmp_path, raw, words):
    refused(tmp_path, assemble({}, None, json_bytes=raw), "glbMalformed", *words)


def test_an_image_must_hold_data_one_way(tmp_path):
    refused(tmp_path, mutated(lambda d: d.update(images=[{}])), "glbMalformed", "image 0", "no data")
    both = {"bufferView": 0, "uri": "data:image/png;base64,AAAA"}
    refused(tmp_path, mutated(lambda d: d.update(images=[both])), "glbMalformed", "image 0", "both")


def test_a_cycle_in_the_nodes_is_refused(tmp_path):
    def change(doc):
        doc["nodes"][1]["children"] = [0]
    refused(tmp_path, mutated(change), "glbMalformed", "its own ancestor")

    def self_loop(doc):
        doc["nodes"].append({"children": [2]})
    refused(tmp_path, mutated(self_loop), "glbMalformed", "node 2", "its own ancestor")


def test_a_node_with_two_parents_is_refused(tmp_path):
    def change(doc):
        doc["nodes"].append({"children": [1]})
    refused(tmp_path, mutated(change), "glbMalformed", "node 1", "more than one")


def test_a_draco_header_that_cannot_be_read_is_refused(tmp_path):
    refused(tmp_path, draco_glb(b"DRACX" + bytes(20)), "glbMalformed", "draco")
    refused(tmp_path, draco_glb(b"DRACO" + bytes([9, 9, 1, 1, 0, 0])), "glbMalformed", "draco")  # version 9.9
    refused(tmp_path, draco_glb(b"DRACO" + bytes([2, 2, 1, 1, 0, 0, 0]) + b"\xff" * 6), "glbMalformed", "draco")


# -- the container -------------------------------------------------------------------------------------


def test_a_json_chunk_declared_larger_than_the_file_is_refused(tmp_path):
    data = bytearray(canonical_glb())
    data[12:16] = struct.pack("<I", len(data) * 2)
    refused(tmp_path, bytes(data), "notGlb", "json chunk", "more than the file holds")


@pytest.mark.parametrize(("edit", "words"), [
    (lambda d: b"glTX" + d[4:], ["start like a GLB"]),
    (lambda d: d[:4] + struct.pack("<I", 1) + d[8:], ["version 1"]),
    (lambda d: d + b"\0\0\0\0", ["declares"]),
    (lambda d: d[:-4], ["declares"]),
    (lambda d: d[:12], []),
    (lambda d: d[:16] + b"BIN\0" + d[20:], ["first chunk is not json"]),
])
def test_broken_headers_are_refused(tmp_path, edit, words):
    refused(tmp_path, edit(canonical_glb()), "notGlb", *words)


def test_chunk_layout_is_checked(tmp_path):
    doc, binary = read_glb(canonical_glb())
    raw = pad4(json.dumps(doc).encode(), b" ")
    json_chunk = struct.pack("<II", len(raw), 0x4E4F534A) + raw
    bin_chunk = struct.pack("<II", len(binary), 0x004E4942) + binary
    extra = struct.pack("<II", 4, 0x12345678) + b"abcd"

    def glb(*chunks):
        body = b"".join(chunks)
        return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body

    assert inspect_glb(write(tmp_path, glb(json_chunk, bin_chunk, extra), "extra.glb")).triangles > 0
    refused(tmp_path, glb(json_chunk, extra, bin_chunk), "notGlb", "not the second chunk")
    refused(tmp_path, glb(json_chunk, bin_chunk, json_chunk), "notGlb", "second json chunk")
    odd = struct.pack("<II", 3, 0x12345678) + b"abc"
    refused(tmp_path, glb(json_chunk, bin_chunk, odd), "notGlb", "aligned")
    refused(tmp_path, glb(json_chunk, bin_chunk + b"\0\0\0"), "notGlb", "cut short")
    unaligned_json = struct.pack("<II", len(raw) - 1, 0x4E4F534A) + raw[:-1]
    refused(tmp_path, glb(unaligned_json, bin_chunk), "notGlb", "aligned")
    doc_no_bin = copy.deepcopy(doc)
    refused(tmp_path, glb(struct.pack("<II", len(raw), 0x4E4F534A) + pad4(json.dumps(doc_no_bin).encode(), b" ")),
            "glbMalformed", "buffer 0", "holds none")


def test_the_file_missing_is_not_glb(tmp_path):
    with pytest.raises(RunwareError) as info:
        inspect_glb(tmp_path / "nothing.glb")
    assert info.value.code == "notGlb"
    assert info.value.sentence == f"{SENTENCES['notGlb']} (it could not be read)"


# -- budgets -------------------------------------------------------------------------------------------


def test_too_many_triangles(tmp_path):
    error = refused(tmp_path, canonical_glb(), "glbTooLarge", "1,216 triangles", "limit of 1,000", "preferences",
                    max_triangles=1000)
    assert "1,216" in error.sentence
    refused(tmp_path, canonical_glb(), "glbTooLarge", "vertices", "limit of 100", max_vertices=100)
    assert inspect_glb(write(tmp_path, canonical_glb(), "ok.glb"), max_triangles=1216).triangles == 1216


def test_a_mesh_instanced_many_times_counts_each_time(tmp_path):
    def change(doc):
        doc["nodes"] += [{"mesh": 0} for _ in range(9)]
    assert inspect_glb(write(tmp_path, mutated(change))).triangles == 10 * 1216
    refused(tmp_path, mutated(change), "glbTooLarge", "triangles", max_triangles=10_000)


def test_morph_targets_are_weighed_as_the_shape_keys_blender_makes_of_them(tmp_path):
    """A few kilobytes whose one POSITION accessor is reused by 200 targets: 201 copies of every vertex."""
    vertices = inspect_glb(write(tmp_path, canonical_glb())).vertices
    def change(doc):
        primitive = doc["meshes"][0]["primitives"][0]
        primitive["targets"] = [{"POSITION": primitive["attributes"]["POSITION"]} for _ in range(200)]
    assert inspect_glb(write(tmp_path, mutated(change), "ok.glb")).vertices == 201 * vertices
    refused(tmp_path, mutated(change), "glbTooLarge", "vertices", max_vertices=100 * vertices)


@pytest.mark.timeout(60)  # a hang detector: counting 2**64 instances one by one would never end
def test_a_fan_out_of_shared_nodes_is_counted_fast(tmp_path):
    """64 levels, each node listing the next one twice: 2**64 instances of one mesh, in 65 node objects."""
    def change(doc):
        depth = 64
        doc["nodes"] = [{"children": [i + 1, i + 1]} for i in range(depth)] + [{"mesh": 0}]
        doc["scenes"] = [{"nodes": [0]}]
    refused(tmp_path, mutated(change), "glbTooLarge", "nodes", "10,000", max_triangles=10**30)
    refused(tmp_path, mutated(change), "glbTooLarge", "triangles", max_nodes=10**30)
    refused(tmp_path, mutated(change), "glbTooLarge")


def test_too_many_nodes_or_children(tmp_path):
    def many(doc):
        doc["nodes"] += [{} for _ in range(200)]
    refused(tmp_path, mutated(many), "glbTooLarge", "nodes", "limit", max_nodes=100)

    def wide(doc):
        doc["nodes"][0]["children"] = [1] * 50_000
    refused(tmp_path, mutated(wide), "glbTooLarge", "nodes")


def test_a_huge_embedded_image_is_refused_by_its_header(tmp_path):
    """Only the header bytes: 50000 × 50000 declared, never decoded."""
    error = refused(tmp_path, with_image(png_header(50_000, 50_000)), "glbTooLarge", "pixels", "67,108,864")
    assert "image" in error.sentence
    assert inspect_glb(write(tmp_path, with_image(png_header(50_000, 50_000)), "ok.glb"),
                       max_image_pixels=50_000**2).image_pixels == 50_000**2


def test_an_image_whose_size_cannot_be_read_is_refused(tmp_path):
    refused(tmp_path, with_image(b"\xabKTX 20\xbb\r\n\x1a\n" + bytes(64)), "glbMalformed", "image 0", "size")
    refused(tmp_path, with_image(png_header(4, 4)[:20]), "glbMalformed", "image 0", "size")


def test_a_json_chunk_over_the_limit_is_refused_before_reading_it(tmp_path):
    refused(tmp_path, canonical_glb(), "glbTooLarge", "json", "limit of 100", max_json_bytes=100)


def test_a_draco_bomb_is_refused_by_its_header(tmp_path):
    """Accessors claim 3 vertices; the Draco header says 50 million faces: the decoder would allocate them."""
    ok = inspect_glb(write(tmp_path, draco_glb(edgebreaker(4, 2)), "ok.glb"))
    assert (ok.triangles, ok.vertices) == (2, 4)
    refused(tmp_path, draco_glb(edgebreaker(3, 50_000_000)), "glbTooLarge", "triangles", "10,000,000")
    refused(tmp_path, draco_glb(edgebreaker(40_000_000, 3)), "glbTooLarge", "vertices")
    sequential = b"DRACO" + bytes([2, 2, 1, 0, 0, 0]) + varint(60_000_000) + varint(3)
    refused(tmp_path, draco_glb(sequential), "glbTooLarge", "triangles")
    old = b"DRACO" + bytes([1, 3, 1, 0, 0, 0]) + struct.pack("<II", 20_000_000, 3)  # fixed-size fields
    refused(tmp_path, draco_glb(old), "glbTooLarge", "triangles")


def test_draco_metadata_is_walked_not_trusted(tmp_path):
    entry = b"\x04name" + varint(3) + b"abc"
    block = varint(1) + entry + varint(1) + b"\x03sub" + varint(2) + entry + entry + varint(0)
    metadata = varint(1) + varint(0) + block + block  # one attribute's block, then the geometry's
    summary = inspect_glb(write(tmp_path, draco_glb(edgebreaker(5, 7, flags=0x8000, metadata=metadata))))
    assert (summary.triangles, summary.vertices) == (7, 5)
    endless = varint(0) + varint(2**31) + entry * 100  # claims 2**31 entries
    refused(tmp_path, draco_glb(edgebreaker(5, 7, flags=0x8000, metadata=endless)), "glbMalformed", "draco")


def test_accessors_without_data_are_bounded(tmp_path):
    def change(doc):
        doc["accessors"].append({"componentType": 5126, "count": 2**31, "type": "MAT4"})
    refused(tmp_path, mutated(change), "glbTooLarge", "without data")


# -- extensions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["KHR_texture_basisu", "EXT_meshopt_compression", "ACME_mystery"])
def test_an_extension_blender_cannot_read_is_refused(tmp_path, name):
    def change(doc):
        doc["extensionsUsed"] = [name]
        doc["extensionsRequired"] = [name]
    error = refused(tmp_path, mutated(change), "glbUnknownExtension", name, "blender cannot read")
    assert error.sentence.endswith(f"(it requires the extension {name})")


def test_extensions_blender_reads_pass_and_unknown_used_ones_are_fine(tmp_path):
    def change(doc):
        doc["extensionsUsed"] = ["KHR_materials_unlit", "KHR_texture_transform", "ACME_optional"]
        doc["extensionsRequired"] = ["KHR_materials_unlit", "KHR_texture_transform"]
    summary = inspect_glb(write(tmp_path, mutated(change)))
    assert summary.extensions_used == ["KHR_materials_unlit", "KHR_texture_transform", "ACME_optional"]

    def odd_name(doc):
        doc["extensionsUsed"] = doc["extensionsRequired"] = ["<script>'x'</script>"]
    refused(tmp_path, mutated(odd_name), "glbUnknownExtension", "invalid name")


def test_a_caller_may_accept_more_extensions(tmp_path):
    def change(doc):
        doc["extensionsUsed"] = doc["extensionsRequired"] = ["KHR_materials_dispersion"]
    path = write(tmp_path, mutated(change))
    with pytest.raises(RunwareError):
        inspect_glb(path)
    inspect_glb(path, known_extensions={"KHR_materials_dispersion"})


# -- fuzzing -------------------------------------------------------------------------------------------

ODD_VALUES = [-1, 0, 1, 2, 3, 4, 7, 255, 65536, 2**31, 2**32 + 1, 2**53 + 1, 2**64, -(2**63), 0.5, 1e308, True,
              False, None, "", "0", "x", "../secret", "/dev/zero", "data:image/png;base64,AAAA", [], [0], [0, 0],
              {}, {"index": 0}, {"bufferView": 0}]


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _mutate(doc: dict, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        path = rng.choice(paths)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action < 0.75 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.85 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][rng.choice(["uri", "count", "bufferView", "children", "mesh", "extensions",
                                         "sparse", "byteStride", "mode", "indices"])] = rng.choice(ODD_VALUES)
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(paths and [doc.get("accessors"), doc.get("nodes"), 5]))


@pytest.mark.parametrize(("base", "runs"), [(SAMPLE, 300), (DATA / "textured_sphere.glb", 100),
                                            (DATA / "draco_sphere.glb", 100)])
def test_fuzzed_json_passes_or_is_refused_cleanly(tmp_path, base, runs):
    rng = random.Random(1125)
    original, binary = read_glb(base.read_bytes())
    outcomes = {"passed": 0}
    path = tmp_path / "fuzz.glb"
    # The JSON chunk is padded to a fixed size, so each run rewrites only it, not the 4 MB BIN chunk after it.
    room = 65536
    path.write_bytes(assemble({}, binary, json_bytes=b" " * room))
    for _ in range(runs):
        doc = copy.deepcopy(original)
        _mutate(doc, rng)
        raw = json.dumps(doc).encode()
        if len(raw) <= room:
            with open(path, "r+b") as f:
                f.seek(20)
                f.write(raw.ljust(room))
        else:
            path.write_bytes(assemble(doc, binary))
        try:
            inspect_glb(path)
            outcomes["passed"] += 1
        except RunwareError as error:
            assert error.code in CODES
            assert "could not be checked" not in error.sentence, error.__cause__  # the safety net: a bug here
            outcomes[error.code] = outcomes.get(error.code, 0) + 1
    assert outcomes["passed"] and outcomes.get("glbMalformed"), outcomes
