// Fragment shader of batched geometry: the model's own material (StandardMaterial), then the
// element's state from the state texture, looked up by the element slot every vertex carries in
// UV channel 1. Mirrors the per-element materials in element_styles.rs: a style color replaces
// the model's color (with a little self-light), hover and selection brighten, ghosting makes the
// element faint, a style opacity scales alpha, and hidden elements are not drawn at all.

#import bevy_pbr::{
    pbr_fragment::pbr_input_from_standard_material,
    pbr_functions::{alpha_discard, apply_pbr_lighting, main_pass_post_lighting_processing},
    forward_io::{VertexOutput, FragmentOutput},
}

// Two texels per slot: [r, g, b, opacity] of the style color (sRGB bytes), then [flags, 0, 0, 0].
@group(#{MATERIAL_BIND_GROUP}) @binding(100) var element_state: texture_2d<f32>;

// Keep in step with `StateFlags` in batched_geometry.rs.
const HAS_COLOR: u32 = 1u;
const HIDDEN: u32 = 2u;
const HOVERED: u32 = 4u;
const SELECTED: u32 = 8u;
const GHOSTED: u32 = 16u;

// Keep in step with HIGHLIGHT and GHOST_ALPHA in element_styles.rs.
const HIGHLIGHT: vec3<f32> = vec3<f32>(0.1, 0.55, 1.0);
const GHOST_ALPHA: f32 = 0.12;

fn srgb_to_linear(color: vec3<f32>) -> vec3<f32> {
    let low = color / 12.92;
    let high = pow((color + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, color <= vec3<f32>(0.04045));
}

@fragment
fn fragment(in: VertexOutput, @builtin(front_facing) is_front: bool) -> FragmentOutput {
    let slot = u32(in.uv_b.x + 0.5);
    let per_row = textureDimensions(element_state).x / 2u;
    let texel = vec2<i32>(i32((slot % per_row) * 2u), i32(slot / per_row));
    let look = textureLoad(element_state, texel, 0);
    let flags = u32(textureLoad(element_state, texel + vec2<i32>(1, 0), 0).r * 255.0 + 0.5);
    if (flags & HIDDEN) != 0u {
        discard;
    }

    var pbr_input = pbr_input_from_standard_material(in, is_front);
#ifndef VERTEX_NORMALS
    // A flat-shaded batch has welded vertices and no normals: each face's normal is the cross
    // product of the position's screen-space derivatives, turned toward the viewer.
    var face = normalize(cross(dpdx(in.world_position.xyz), dpdy(in.world_position.xyz)));
    if dot(face, pbr_input.V) < 0.0 {
        face = -face;
    }
    pbr_input.N = face;
    pbr_input.world_normal = face;
#endif
    let styled = (flags & HAS_COLOR) != 0u;
    if styled {
        let color = srgb_to_linear(look.rgb);
        // A style color is opaque (as the style materials are), whatever the model's alpha.
        pbr_input.material.base_color = vec4<f32>(color, 1.0);
        pbr_input.material.emissive = vec4<f32>(color * 0.25, 1.0);
        pbr_input.material.perceptual_roughness = 0.85;
        pbr_input.material.metallic = 0.0;
    }
    // Styled elements keep their hue (it carries the twin's state); unstyled ones take the tint.
    let glow = select(HIGHLIGHT, pbr_input.material.base_color.rgb, styled);
    if (flags & SELECTED) != 0u {
        pbr_input.material.emissive = vec4<f32>(pbr_input.material.emissive.rgb + glow * 0.6, 1.0);
    } else if (flags & HOVERED) != 0u {
        pbr_input.material.emissive = vec4<f32>(pbr_input.material.emissive.rgb + glow * 0.2, 1.0);
    }
    if (flags & GHOSTED) != 0u {
        pbr_input.material.base_color.a = GHOST_ALPHA;
        pbr_input.material.emissive = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    } else {
        pbr_input.material.base_color.a = pbr_input.material.base_color.a * look.a;
    }
    pbr_input.material.base_color = alpha_discard(pbr_input.material, pbr_input.material.base_color);

    var out: FragmentOutput;
    out.color = apply_pbr_lighting(pbr_input);
    out.color = main_pass_post_lighting_processing(pbr_input, out.color);
    return out;
}
