//! Colors as scenes write them (`#rgb`, `#rrggbb`), parsed once and printed as lowercase
//! `#rrggbb` so that published state and tests compare plain strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An sRGB color with 8 bits per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid color {text:?}: expected #rgb or #rrggbb")]
pub struct ColorParseError {
    pub text: String,
}

impl Color {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }
}

impl FromStr for Color {
    type Err = ColorParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ColorParseError { text: text.to_owned() };
        let hex = text.strip_prefix('#').ok_or_else(error)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error());
        }
        let digit = |i: usize| u8::from_str_radix(&hex[i..=i], 16).map_err(|_| error());
        let pair = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| error());
        match hex.len() {
            3 => Ok(Color::rgb(digit(0)? * 17, digit(1)? * 17, digit(2)? * 17)),
            6 => Ok(Color::rgb(pair(0)?, pair(2)?, pair(4)?)),
            _ => Err(error()),
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

impl Serialize for Color {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How opaque an element is drawn, stored as an 8-bit alpha so that styles stay `Eq` and
/// compare exactly: 0 is invisible, 255 opaque; a scene's `0.0..=1.0` is rounded to the nearest
/// 1/255 (a precision of about 0.002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opacity(pub u8);

impl Opacity {
    pub const OPAQUE: Opacity = Opacity(255);

    /// From `0.0..=1.0`; values outside are clamped, NaN is opaque.
    pub fn from_f64(value: f64) -> Self {
        if value.is_nan() {
            return Self::OPAQUE;
        }
        Self((value.clamp(0.0, 1.0) * 255.0).round() as u8)
    }

    pub fn alpha(self) -> u8 {
        self.0
    }

    /// As `0.0..=1.0`.
    pub fn as_f32(self) -> f32 {
        f32::from(self.0) / 255.0
    }
}

impl fmt::Display for Opacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Two decimals are enough to tell every alpha step from its neighbours' neighbours.
        write!(f, "{:.2}", self.as_f32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_long_forms_and_prints_lowercase_long_form() {
        assert_eq!("#F00".parse::<Color>().unwrap(), Color::rgb(255, 0, 0));
        assert_eq!("#3B82f6".parse::<Color>().unwrap(), Color::rgb(0x3b, 0x82, 0xf6));
        assert_eq!(Color::rgb(0x3b, 0x82, 0xf6).to_string(), "#3b82f6");
    }

    #[test]
    fn opacity_rounds_to_an_alpha_step_and_clamps() {
        assert_eq!(Opacity::from_f64(0.32).alpha(), 82);
        assert!((Opacity::from_f64(0.32).as_f32() - 0.32).abs() < 0.002);
        assert_eq!(Opacity::from_f64(-1.0), Opacity(0));
        assert_eq!(Opacity::from_f64(2.0), Opacity::OPAQUE);
        assert_eq!(Opacity::from_f64(f64::NAN), Opacity::OPAQUE);
        assert_eq!(Opacity::from_f64(0.32).to_string(), "0.32");
    }

    #[test]
    fn rejects_names_and_bad_lengths() {
        for bad in ["red", "#12", "#12345", "#gggggg", "123456", "#+1+2+3", "#é12"] {
            assert!(bad.parse::<Color>().is_err(), "{bad} should not parse");
        }
    }
}
