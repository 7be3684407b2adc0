"""Where an object's colour comes from, and the material that shows the baked texture."""

from __future__ import annotations

from typing import cast

import bpy

from ...translations import rpt_
from ..machinery.importing import principled_material
from .errors import BakeError
from .unwrap import UV_NAME


def _nodes_used(mat: bpy.types.Material | None) -> bool:
    if mat is None or mat.node_tree is None:
        return False
    # Blender 5 always renders the node tree (use_nodes is deprecated there); 4.x only with use_nodes.
    return bpy.app.version >= (5, 0, 0) or bool(mat.use_nodes)


def _material_colour_linked(mat: bpy.types.Material | None) -> bool:
    """Whether the material's base colour comes from something (a texture, an attribute, any node)."""
    if mat is None or mat.node_tree is None or not _nodes_used(mat):
        return False
    for node in mat.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED" and node.inputs["Base Color"].is_linked:
            return True
        if node.type == "BSDF_DIFFUSE" and node.inputs["Color"].is_linked:
            return True
    return False


def colour_source(obj: bpy.types.Object) -> str:
    """"" when the object's materials give its colour; else the name of the colour attribute to bake.

    Raises BakeError when there is nothing to bake."""
    if any(_material_colour_linked(slot.material) for slot in obj.material_slots):
        return ""
    colours = cast(bpy.types.Mesh, obj.data).color_attributes
    if len(colours):
        return (colours.active_color or colours[0]).name
    raise BakeError(rpt_("“{}” has no colour to bake: it has no vertex colours, and its material takes its colour "
                         "from no texture.").format(obj.name))


def node_tree_of(mat: bpy.types.Material) -> bpy.types.ShaderNodeTree:
    """The node tree of a material of ours (made with nodes)."""
    tree = mat.node_tree
    assert tree is not None
    return tree


def baked_material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    """Principled BSDF and an image node reading `image` through the UV map, the active node (where Cycles
    bakes to). Linked to the Base Color after the bake (`show_baked`): a material reading the image it is
    baked into is a circular dependency to Cycles."""
    mat, bsdf = principled_material(name)
    tree = node_tree_of(mat)
    nodes, links = tree.nodes, tree.links
    tex = nodes.new("ShaderNodeTexImage")
    tex.name = tex.label = "Baked Colour"
    texture = cast(bpy.types.ShaderNodeTexImage, tex)  # its settings (the stubs type its sockets Optional)
    texture.image = image
    texture.interpolation = "Linear"
    tex.location = (bsdf.location[0] - 320, bsdf.location[1])
    uv = nodes.new("ShaderNodeUVMap")
    cast(bpy.types.ShaderNodeUVMap, uv).uv_map = UV_NAME
    uv.location = (tex.location[0] - 220, tex.location[1] - 80)
    links.new(uv.outputs["UV"], tex.inputs["Vector"])
    for node in nodes:
        node.select = False
    tex.select = True
    nodes.active = tex
    return mat


def show_baked(mat: bpy.types.Material) -> None:
    tree = node_tree_of(mat)
    nodes = tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    tree.links.new(nodes["Baked Colour"].outputs["Color"], bsdf.inputs["Base Color"])
