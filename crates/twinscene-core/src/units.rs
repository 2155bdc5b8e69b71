//! Units of twin properties for display: the DTDL `unit` of a property (or telemetry) of the
//! twin's model, written as people read it (`degreeCelsius` → `°C`). Units DTDL names but this
//! table does not know are shown by their DTDL name rather than dropped.

use crate::dtdl::ModelSet;

/// The symbol of a DTDL unit name, for the common units of building and plant twins.
pub fn unit_symbol(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "degreeCelsius" => "°C",
        "degreeFahrenheit" => "°F",
        "kelvin" => "K",
        "percent" => "%",
        "watt" => "W",
        "kilowatt" => "kW",
        "megawatt" => "MW",
        "wattHour" => "Wh",
        "kilowattHour" => "kWh",
        "megawattHour" => "MWh",
        "volt" => "V",
        "ampere" => "A",
        "pascal" => "Pa",
        "kilopascal" => "kPa",
        "bar" => "bar",
        "poundPerSquareInch" => "psi",
        "metre" => "m",
        "centimetre" => "cm",
        "millimetre" => "mm",
        "kilometre" => "km",
        "squareMetre" => "m²",
        "cubicMetre" => "m³",
        "litre" => "L",
        "litrePerSecond" => "L/s",
        "cubicMetrePerSecond" => "m³/s",
        "metrePerSecond" => "m/s",
        "kilometrePerHour" => "km/h",
        "second" => "s",
        "minute" => "min",
        "hour" => "h",
        "hertz" => "Hz",
        "revolutionPerMinute" => "rpm",
        "kilogram" => "kg",
        "gram" => "g",
        "lux" => "lx",
        "decibel" => "dB",
        "partsPerMillion" => "ppm",
        "microgramPerCubicMetre" => "µg/m³",
        _ => return None,
    })
}

/// The display unit of `property` of twins of `model`: its symbol, or the DTDL unit name when
/// there is no symbol for it; `None` when the model or property is unknown or has no unit.
pub fn property_unit(models: &ModelSet, model: &str, property: &str) -> Option<String> {
    let interface = models.interface(model)?;
    let unit = interface
        .properties
        .get(property)
        .and_then(|p| p.unit.as_deref())
        .or_else(|| interface.telemetry.get(property).and_then(|t| t.unit.as_deref()))?;
    Some(unit_symbol(unit).map_or_else(|| unit.to_owned(), str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_come_from_the_model_and_read_as_symbols() {
        let models = ModelSet::from_json_str(
            r#"[{"@id": "dtmi:t:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2", "contents": [
                {"@type": ["Property", "Temperature"], "name": "temperature", "schema": "double", "unit": "degreeCelsius"},
                {"@type": ["Telemetry", "Illuminance"], "name": "light", "schema": "double", "unit": "footcandle"},
                {"@type": "Property", "name": "name", "schema": "string"}]}]"#,
        )
        .unwrap();
        assert_eq!(property_unit(&models, "dtmi:t:Room;1", "temperature").as_deref(), Some("°C"));
        // Unknown to the symbol table: shown by its DTDL name, not dropped.
        assert_eq!(property_unit(&models, "dtmi:t:Room;1", "light").as_deref(), Some("footcandle"));
        assert_eq!(property_unit(&models, "dtmi:t:Room;1", "name"), None);
        assert_eq!(property_unit(&models, "dtmi:t:Other;1", "temperature"), None);
    }
}
