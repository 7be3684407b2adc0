"""The counts a Draco-compressed mesh declares in its bitstream's header (faces, vertices), read the way draco's
decoder reads them, within bounds: what the GLB gate (glb_gate.py) budgets, since the decoder's output replaces
the accessors' counts in Blender's importer. Pure: no bpy, no decoding."""

from __future__ import annotations

import struct
from collections.abc import Callable

MAX_ITEMS = 100_000  # metadata entries walked before giving up on a header


def header_counts(read: Callable[[int, int], bytes], length: int) -> tuple[int, int] | None:
    """(faces, vertices) declared by a Draco bitstream's header, as draco's decoder reads them
    (draco/compression: point_cloud_decoder.cc, mesh_sequential_decoder.cc, mesh_edgebreaker_decoder*.cc);
    None when it is not one the decoder accepts or cannot be walked within bounds."""
    reader = _DracoReader(read, length)
    try:
        if reader.take(5) != b"DRACO":
            return None
        major, minor, encoder_type, method = reader.take(4)
        flags = reader.u16()
        version = (major << 8) | minor
        if major < 1 or major > 2 or (major == 2 and minor > (3 if encoder_type == 0 else 2)):
            return None  # the decoder knows meshes up to 2.2, point clouds up to 2.3
        if version >= 0x0103 and flags & 0x8000:
            reader.skip_metadata()
        if encoder_type == 0:  # point cloud: a signed 32-bit point count
            points = struct.unpack("<i", reader.take(4))[0]
            return (0, points) if points >= 0 else None
        if encoder_type != 1:
            return None
        old = version < 0x0200  # fixed 32-bit fields before 2.0, varints since
        if method == 0:  # sequential
            if version < 0x0202:
                return reader.u32(), reader.u32()
            return reader.varint(), reader.varint()
        if method != 1:
            return None
        if reader.take(1)[0] > 2:  # edgebreaker traversal: standard, predictive or valence
            return None
        new_vertices = 0
        if version < 0x0202:
            new_vertices = reader.u32() if old else reader.varint()
        encoded_vertices = reader.u32() if old else reader.varint()
        faces = reader.u32() if old else reader.varint()
        reader.take(1)  # attribute data count
        _symbols = reader.u32() if old else reader.varint()
        split_symbols = reader.u32() if old else reader.varint()
        return faces, encoded_vertices + split_symbols + new_vertices
    except _DracoError:
        return None


class _DracoError(Exception):
    pass


class _DracoReader:
    def __init__(self, read: Callable[[int, int], bytes], length: int) -> None:
        self.read = read
        self.length = length
        self.pos = 0
        self.budget = MAX_ITEMS  # metadata entries and blocks walked before giving up

    def take(self, n: int) -> bytes:
        if self.pos + n > self.length:
            raise _DracoError
        data = self.read(self.pos, n)
        if len(data) != n:
            raise _DracoError
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.pos + n > self.length:
            raise _DracoError
        self.pos += n

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def varint(self) -> int:
        """Draco's unsigned LEB128 for 32-bit values: at most 5 bytes, kept to 32 bits."""
        value = shift = 0
        for _ in range(5):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value & 0xFFFFFFFF
        raise _DracoError

    def skip_metadata(self) -> None:
        """Geometry metadata: attribute metadata (an id, then a block) and the geometry's own block. A block
        is entries (name, size, bytes), then named sub-blocks in turn (name, block, name, block...)."""
        attributes = self.varint()
        self._spend(attributes)
        for _ in range(attributes):
            self.varint()
            self._skip_block()
        self._skip_block()

    def _skip_block(self) -> None:
        remaining = [1]  # blocks still to read at each depth; the outermost one has no name before it
        first = True
        while remaining:
            if not remaining[-1]:
                remaining.pop()
                continue
            remaining[-1] -= 1
            if not first:
                self._skip_name()
            first = False
            entries = self.varint()
            self._spend(entries)
            for _ in range(entries):
                self._skip_name()
                size = self.varint()
                if size == 0:
                    raise _DracoError
                self.skip(size)
            subs = self.varint()
            self._spend(subs)
            if subs:
                remaining.append(subs)

    def _skip_name(self) -> None:
        self.skip(self.take(1)[0])

    def _spend(self, items: int) -> None:
        self.budget -= items
        if self.budget < 0:
            raise _DracoError
