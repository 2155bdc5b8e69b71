// Shaders of batched geometry. They mirror the per-element materials in element_styles.rs: a
// style color replaces the model's color (with a little self-light), hover and selection
// brighten, ghosting makes the element faint, a style opacity scales alpha and hidden elements
// are not drawn.
//
// Almost all of the work is per vertex, not per pixel. Software WebGL (SwiftShader, what a
// headless browser or a machine without a GPU has) shades every pixel on the CPU, and Bevy's
// full PBR fragment shader made a frame of a building about ten times as expensive as a
// constant color. So the vertex stage reads the element's state from the state texture (by
// the element slot every vertex carries), collapses hidden elements, and lights
// the vertex: Lambert diffuse from the key light plus the ambient light, which for the planar
// faces of a building equals per-pixel lighting. The fragment stage only multiplies in the base
// color texture, if the material has one.

#import bevy_pbr::{
    forward_io::FragmentOutput,
    mesh_functions,
    mesh_view_bindings::view,
    pbr_bindings,
    pbr_types,
    view_transformations::position_world_to_clip,
}

#ifdef TONEMAP_IN_SHADER
#import bevy_core_pipeline::tonemapping::tone_mapping
#endif

// Two texels per slot: [r, g, b, opacity] of the style color (sRGB bytes), then [flags, 0, 0, 0].
@group(#{MATERIAL_BIND_GROUP}) @binding(100) var element_state: texture_2d<f32>;

// The scene's lights (`BatchLighting` in batched_geometry.rs): Bevy's light bindings are not
// visible to vertex shaders.
struct BatchLighting {
    direction_to_light: vec4<f32>,
    key_light: vec4<f32>,
    ambient_light: vec4<f32>,
}
@group(#{MATERIAL_BIND_GROUP}) @binding(101) var<uniform> lighting: BatchLighting;

// Keep in step with `StateFlags` in batched_geometry.rs.
const HAS_COLOR: u32 = 1u;
const HIDDEN: u32 = 2u;
const HOVERED: u32 = 4u;
const SELECTED: u32 = 8u;
const GHOSTED: u32 = 16u;
const STALE: u32 = 32u;

// Keep in step with HIGHLIGHT and GHOST_ALPHA in element_styles.rs.
const HIGHLIGHT: vec3<f32> = vec3<f32>(0.1, 0.55, 1.0);
const GHOST_ALPHA: f32 = 0.12;
// How much of its color a stale element keeps: its data is too old to trust, so its state
// color fades towards gray (the page marks up to `stale-markers-up-to` of them as well; this
// mark costs nothing per element and so covers a whole facility gone quiet).
const STALE_COLOR_KEPT: f32 = 0.15;

const PI: f32 = 3.141592653589793;

// The batches' own vertex layout (`ATTRIBUTE_SLOT`, `ATTRIBUTE_TINT` and the `specialize`
// of `ElementStateLookup` in batched_geometry.rs): normals only for smooth-shaded batches,
// texture coordinates only for textured ones.
struct BatchVertex {
    @builtin(instance_index) instance_index: u32,
    @location(0) position: vec3<f32>,
#ifdef VERTEX_NORMALS
    @location(1) normal: vec3<f32>,
#endif
#ifdef VERTEX_UVS_A
    @location(2) uv: vec2<f32>,
#endif
    // The element's slot in the state texture.
    @location(3) slot: u32,
    // The model's base color: sRGB-encoded RGB, linear alpha.
    @location(5) tint: vec4<f32>,
}

struct BatchVertexOutput {
    @builtin(position) position: vec4<f32>,
    // Linear base color and alpha: the style color, or the model material's color.
    @location(0) base_color: vec4<f32>,
    // What the base color is multiplied by (light), and what is added (emitted light).
    @location(1) light: vec3<f32>,
    @location(2) emitted: vec3<f32>,
#ifdef VERTEX_UVS_A
    @location(3) uv: vec2<f32>,
#endif
#ifndef VERTEX_NORMALS
    @location(4) world_position: vec3<f32>,
#endif
    @location(5) @interpolate(flat) flags: u32,
}

// sRGB to linear by a cubic fit (within 0.2 % of the exact curve): the exact one takes three
// pow() calls, paid here for every vertex.
fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    return c * (c * (c * 0.305306011 + 0.682171111) + 0.012522878);
}

// Light reaching a surface with normal `normal`, in the view's exposure: the key light as
// Lambert diffuse, plus the ambient light.
fn light_at(normal: vec3<f32>) -> vec3<f32> {
    let key = max(dot(normal, lighting.direction_to_light.xyz), 0.0) / PI;
    return (lighting.ambient_light.rgb + lighting.key_light.rgb * key) * view.exposure;
}

@vertex
fn vertex(vertex: BatchVertex) -> BatchVertexOutput {
    var out: BatchVertexOutput;
    let slot = vertex.slot;
    let per_row = textureDimensions(element_state).x / 2u;
    let texel = vec2<i32>(i32((slot % per_row) * 2u), i32(slot / per_row));
    let flags = u32(textureLoad(element_state, texel + vec2<i32>(1, 0), 0).r * 255.0 + 0.5);
    out.flags = flags;
    if (flags & HIDDEN) != 0u {
        // Every vertex of a hidden element lands on the same point outside the clip volume, so
        // its triangles are clipped before any pixel is shaded.
        out.position = vec4<f32>(2.0, 2.0, 2.0, 1.0);
        return out;
    }
    let world_from_local = mesh_functions::get_world_from_local(vertex.instance_index);
    let world_position = mesh_functions::mesh_position_local_to_world(
        world_from_local, vec4<f32>(vertex.position, 1.0));
    out.position = position_world_to_clip(world_position.xyz);
#ifdef VERTEX_UVS_A
    out.uv = vertex.uv;
#endif
#ifdef VERTEX_NORMALS
    let normal = normalize(mesh_functions::mesh_normal_local_to_world(vertex.normal, vertex.instance_index));
    out.light = light_at(normal);
#else
    out.world_position = world_position.xyz;
#endif

    let material = pbr_bindings::material;
    let styled = (flags & HAS_COLOR) != 0u;
    var emissive: vec3<f32>;
    if styled {
        let look = textureLoad(element_state, texel, 0);
        let color = srgb_to_linear(look.rgb);
        // A style color is opaque (as the style materials are), whatever the model's alpha; its
        // self-light keeps faces turned away from the light readable.
        out.base_color = vec4<f32>(color, look.a);
        emissive = color * 0.25;
    } else {
        out.base_color = material.base_color * vec4<f32>(srgb_to_linear(vertex.tint.rgb), vertex.tint.a);
        out.base_color.a *= textureLoad(element_state, texel, 0).a;
        // Emissive alpha is the material's exposure weight, as in Bevy's PBR.
        emissive = material.emissive.rgb * mix(1.0, view.exposure, material.emissive.a);
    }
    if (flags & STALE) != 0u {
        let gray = vec3<f32>(dot(out.base_color.rgb, vec3<f32>(0.2126, 0.7152, 0.0722)));
        out.base_color = vec4<f32>(mix(gray, out.base_color.rgb, STALE_COLOR_KEPT), out.base_color.a);
        emissive = mix(vec3<f32>(dot(emissive, vec3<f32>(0.2126, 0.7152, 0.0722))), emissive, STALE_COLOR_KEPT);
    }
    // Styled elements keep their hue (it carries the twin's state); unstyled ones take the tint.
    let glow = select(HIGHLIGHT, out.base_color.rgb, styled);
    if (flags & SELECTED) != 0u {
        emissive += glow * 0.6;
    } else if (flags & HOVERED) != 0u {
        emissive += glow * 0.2;
    }
    if (flags & GHOSTED) != 0u {
        out.base_color.a = GHOST_ALPHA;
        emissive = vec3<f32>(0.0);
    }
    out.emitted = emissive * out.base_color.a;
    return out;
}

@fragment
fn fragment(in: BatchVertexOutput) -> FragmentOutput {
    let material = pbr_bindings::material;
    var base_color = in.base_color;
#ifdef VERTEX_UVS_A
    let textured = (material.flags & pbr_types::STANDARD_MATERIAL_FLAGS_BASE_COLOR_TEXTURE_BIT) != 0u;
    if textured && (in.flags & HAS_COLOR) == 0u {
        let uv = (material.uv_transform * vec3(in.uv, 1.0)).xy;
        base_color *= textureSampleBias(
            pbr_bindings::base_color_texture, pbr_bindings::base_color_sampler, uv, view.mip_bias);
    }
#endif
#ifdef VERTEX_NORMALS
    let light = in.light;
#else
    // A flat-shaded batch has welded vertices and no normals: each face's normal is the cross
    // product of the position's screen-space derivatives (its sign does not matter below).
    var face = normalize(cross(dpdx(in.world_position), dpdy(in.world_position)));
    if dot(face, view.world_position.xyz - in.world_position) < 0.0 {
        face = -face;
    }
    let light = light_at(face);
#endif

    let alpha_mode = material.flags & pbr_types::STANDARD_MATERIAL_FLAGS_ALPHA_MODE_RESERVED_BITS;
    if alpha_mode == pbr_types::STANDARD_MATERIAL_FLAGS_ALPHA_MODE_OPAQUE {
        base_color.a = 1.0;
    }
#ifdef MAY_DISCARD
    else if alpha_mode == pbr_types::STANDARD_MATERIAL_FLAGS_ALPHA_MODE_MASK {
        if base_color.a < material.alpha_cutoff {
            discard;
        }
        base_color.a = 1.0;
    }
#endif

    var out: FragmentOutput;
    out.color = vec4<f32>(base_color.rgb * light + in.emitted, base_color.a);
#ifdef TONEMAP_IN_SHADER
    out.color = tone_mapping(out.color, view.color_grading);
#endif
    return out;
}
