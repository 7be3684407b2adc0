"""The maps a bake makes beside the base colour: what the source's materials show (`plan`), each input of their
Principled BSDF baked as an emission (`bake_input`), the normal map, and the baked material that reads them.

An engine's PBR result (TRELLIS.2, Hunyuan, Tripo, Rodin, Meshy) comes with metallic, roughness, normal and
emission textures: a bake that kept only the base colour would turn a metal asset into plastic. Cycles has
no metallic pass, and its Diffuse colour pass darkens a metallic surface (diffuse weight 1 − metallic), so
each input is baked the same way: on a copy of each material, the input's source drives an Emission shader
at the output, baked as EMIT. An input that is one value everywhere is copied, not baked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import bpy

from .materials import node_tree_of
from .unwrap import UV_NAME


@dataclass(frozen=True)
class Map:
    """One texture of the baked material: the Principled input it feeds and how its pixels are stored."""

    label: str  # "Metallic": names the image ("<object> Baked Metallic") and its node ("Baked Metallic")
    socket: str  # the Principled BSDF input
    data: bool  # Non-Color (values) rather than sRGB (colours)
    suffix: str  # the PNG's name: <object>_<suffix>.png

    def image_name(self, obj_name: str) -> str:
        """"<object> Baked" for the colour (as before there were other maps), "<object> Baked Metallic"…"""
        return f"{obj_name} Baked" if self.socket == "Base Color" else f"{obj_name} Baked {self.label}"


COLOUR = Map("Colour", "Base Color", False, "baked")
METALLIC = Map("Metallic", "Metallic", True, "metallic")
ROUGHNESS = Map("Roughness", "Roughness", True, "roughness")
NORMAL = Map("Normal", "Normal", True, "normal")
EMISSION = Map("Emission", "Emission Color", False, "emission")


@dataclass
class Plan:
    """What the bake makes beside the colour: the maps to bake, the values to copy."""

    maps: list[Map] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # Principled input → the one value all materials give
    colour_as_emission: bool = False  # the base colour through an emission: a metallic surface shows it darker


def _output(mat: bpy.types.Material | None) -> bpy.types.Node | None:
    """The material's active Material Output node, or None."""
    if mat is None or mat.node_tree is None:
        return None
    outputs = [n for n in mat.node_tree.nodes if n.type == "OUTPUT_MATERIAL"]
    return next((n for n in outputs if getattr(n, "is_active_output", False)), outputs[0] if outputs else None)


def _linked_from(socket: bpy.types.NodeSocket) -> bpy.types.NodeSocket | None:
    """The output socket linked into `socket`, or None."""
    links = socket.links if socket.is_linked else None
    return links[0].from_socket if links else None


def surface_shader(mat: bpy.types.Material | None) -> bpy.types.Node | None:
    """The shader node linked straight to the material's active output's Surface, or None."""
    output = _output(mat)
    linked = _linked_from(output.inputs["Surface"]) if output is not None else None
    return linked.node if linked is not None else None


def _principled(materials: Sequence[bpy.types.Material | None]) -> list[bpy.types.Node] | None:
    """Each material's Principled BSDF (the one at its output), or None when one of them has none."""
    found = [surface_shader(m) for m in materials]
    return None if not found or any(n is None or n.type != "BSDF_PRINCIPLED" for n in found) else \
        cast(list[bpy.types.Node], found)


def plan(materials: Sequence[bpy.types.Material | None]) -> Plan:
    """What to bake from these materials (the source's, slot by slot): nothing beyond the colour unless every one
    is a Principled BSDF, since only its inputs say what a metallic, a roughness or a normal is."""
    nodes = _principled(materials)
    out = Plan()
    if nodes is None:
        return out
    for spec in (METALLIC, ROUGHNESS):
        sockets = [n.inputs[spec.socket] for n in nodes]
        values = {round(float(s.default_value), 4) for s in sockets}  # type: ignore[attr-defined]
        if any(s.is_linked for s in sockets) or len(values) > 1:
            out.maps.append(spec)
        else:
            out.values[spec.socket] = values.pop()
    if any(n.inputs["Normal"].is_linked for n in nodes):
        out.maps.append(NORMAL)
    emitting = [n for n in nodes if _emits(n)]
    if emitting:
        out.maps.append(EMISSION)
        strengths = [n.inputs["Emission Strength"] for n in emitting]
        linked = any(s.is_linked for s in strengths)
        out.values["Emission Strength"] = 1.0 if linked else max(float(s.default_value) for s in strengths)  # type: ignore[attr-defined]
    out.colour_as_emission = METALLIC in out.maps or out.values.get("Metallic", 0.0) > 0.0
    return out


def _emits(node: bpy.types.Node) -> bool:
    colour, strength = node.inputs["Emission Color"], node.inputs["Emission Strength"]
    if not strength.is_linked and float(strength.default_value) <= 0.0:  # type: ignore[attr-defined]
        return False
    return colour.is_linked or max(tuple(colour.default_value)[:3]) > 0.0  # type: ignore[attr-defined]


def as_emission(mat: bpy.types.Material, socket: str) -> bpy.types.Material:
    """A copy of `mat` whose surface is an Emission shader driven by what drives its Principled's `socket`
    (its link, or its value); the emission strength 1, so the bake reads the input itself."""
    copy = mat.copy()
    tree = node_tree_of(copy)
    shader = surface_shader(copy)
    output = _output(copy)
    assert shader is not None and output is not None  # `plan` found a Principled BSDF at every material's output
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0  # type: ignore[attr-defined]
    source = shader.inputs[socket]
    linked = _linked_from(source)
    if linked is not None:
        tree.links.new(linked, emission.inputs["Color"])
    else:
        value = source.default_value  # type: ignore[attr-defined]
        emission.inputs["Color"].default_value = (  # type: ignore[attr-defined]
            tuple(value)[:3] + (1.0,) if hasattr(value, "__len__") else (float(value),) * 3 + (1.0,))
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return copy


class InputsAsEmission:
    """While open, the source mesh's materials are emission copies showing one input; closed (a failure
    included), its own again and the copies gone."""

    def __init__(self, mesh: bpy.types.Mesh, socket: str) -> None:
        self.mesh, self.socket = mesh, socket
        self.originals: list[bpy.types.Material | None] = list(mesh.materials)
        self.copies: list[bpy.types.Material] = []

    def __enter__(self) -> InputsAsEmission:
        try:
            for i, mat in enumerate(self.originals):
                if mat is not None:
                    self.copies.append(as_emission(mat, self.socket))
                    self.mesh.materials[i] = self.copies[-1]
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for i, mat in enumerate(self.originals):
            self.mesh.materials[i] = mat
        for copy in self.copies:
            bpy.data.materials.remove(copy)
        self.copies.clear()


def add_map_node(mat: bpy.types.Material, spec: Map, image: bpy.types.Image, row: int) -> bpy.types.Node:
    """An image node "Baked <label>" reading `image` through the UV map, under the colour's node."""
    tree = node_tree_of(mat)
    colour_node = tree.nodes["Baked Colour"]
    node = tree.nodes.new("ShaderNodeTexImage")
    node.name = node.label = f"Baked {spec.label}"
    texture = cast(bpy.types.ShaderNodeTexImage, node)
    texture.image = image
    texture.interpolation = "Linear"
    node.location = (colour_node.location[0], colour_node.location[1] - 280 * row)
    uv = next(n for n in tree.nodes if n.type == "UVMAP")
    tree.links.new(uv.outputs["UV"], node.inputs["Vector"])
    return node


def link_maps(mat: bpy.types.Material, maps: Sequence[Map], values: dict[str, Any]) -> None:
    """The baked images into the Principled BSDF (the normal map through a Normal Map node in the UV's tangent
    space), and the values copied."""
    tree = node_tree_of(mat)
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    for name, value in values.items():
        bsdf.inputs[name].default_value = value  # type: ignore[attr-defined]
    for spec in maps:
        node = tree.nodes[f"Baked {spec.label}"]
        if spec is NORMAL:
            normal_map = tree.nodes.new("ShaderNodeNormalMap")
            cast(bpy.types.ShaderNodeNormalMap, normal_map).space = "TANGENT"
            cast(bpy.types.ShaderNodeNormalMap, normal_map).uv_map = UV_NAME
            normal_map.location = (node.location[0] + 160, node.location[1])
            tree.links.new(node.outputs["Color"], normal_map.inputs["Color"])
            tree.links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
        else:
            tree.links.new(node.outputs["Color"], bsdf.inputs[spec.socket])
    tree.nodes.active = tree.nodes["Baked Colour"]  # what Solid's Texture colour and Texture Paint show
