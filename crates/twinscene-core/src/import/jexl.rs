//! Jexl, as AWS IoT TwinMaker writes rule statements (`temperature >= 20`,
//! `alarm_status == 'ACTIVE'`, `1 == 1`), translated into twinscene's expression language.
//!
//! Supported: `== != < <= > >= && || ! + - * / %`, the conditional `a ? b : c`, parentheses,
//! numbers, strings, `true false null`, and identifiers (optionally dotted), which the caller
//! resolves to expressions. Jexl's precedence is kept by parenthesizing every operation
//! (in Jexl `==` binds like `<`, and `&&` like `||`). Anything else — `//`, `^`, `in`,
//! transforms (`|`), filters (`[...]`), object and array literals — is refused with a message.

/// Translates a Jexl expression; `resolve` gives the expression for an identifier (`None`:
/// unknown). Returns the expression and the resolved identifiers, in order of appearance.
pub fn translate(
    source: &str,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let tokens = tokenize(source)?;
    let mut parser = Parser { tokens, position: 0, resolve, used: Vec::new(), depth: 0 };
    let (text, _) = parser.expression(0)?;
    if let Some(token) = parser.tokens.get(parser.position) {
        return Err(format!("unexpected {} after the expression", token.describe()));
    }
    Ok((text, parser.used))
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(String),
    Str(String),
    Name(String),
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Number(n) => format!("number {n}"),
            Token::Str(s) => format!("string {s:?}"),
            Token::Name(n) => format!("name {n:?}"),
            Token::Op(op) => format!("{op:?}"),
        }
    }
}

const OPERATORS: [&str; 19] =
    ["==", "!=", "<=", ">=", "&&", "||", "//", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "?", ":"];

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            if text.parse::<f64>().is_err() {
                return Err(format!("{text:?} is not a number"));
            }
            tokens.push(Token::Number(text));
        } else if c == '\'' || c == '"' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string is not closed".into()),
                    Some('\\') => {
                        let Some(&next) = chars.get(i + 1) else {
                            return Err("a string is not closed".into());
                        };
                        text.push(next);
                        i += 2;
                    }
                    Some(&end) if end == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        text.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(text));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || (chars[i] == '.'
                        && chars.get(i + 1).is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '$')))
            {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(format!("{c:?} is not supported here"));
            };
            if *op == "//" {
                return Err("integer division \"//\" is not supported".into());
            }
            tokens.push(Token::Op(op));
            i += op.chars().count();
        }
    }
    if tokens.is_empty() {
        return Err("the expression is empty".into());
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    resolve: &'a dyn Fn(&str) -> Option<String>,
    used: Vec<String>,
    depth: u32,
}

/// Binding power of binary operators, as Jexl defines them.
fn binary_power(op: &str) -> Option<u8> {
    Some(match op {
        "||" | "&&" => 10,
        "==" | "!=" | "<" | "<=" | ">" | ">=" => 20,
        "+" | "-" => 30,
        "*" | "/" | "%" => 40,
        _ => return None,
    })
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    /// Parses an expression whose operators bind tighter than `min`; returns its text and
    /// whether it is atomic (needs no parentheses as an operand).
    fn expression(&mut self, min: u8) -> Result<(String, bool), String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("the expression is nested too deeply".into());
        }
        let (mut left, mut atomic) = self.unary()?;
        while let Some(Token::Op(op)) = self.peek().cloned() {
            if op == "?" && min == 0 {
                self.next();
                let (then, _) = self.expression(0)?;
                if self.next() != Some(Token::Op(":")) {
                    return Err("a conditional \"?\" needs \":\"".into());
                }
                let (otherwise, _) = self.expression(0)?;
                left = format!("{} ? {then} : {otherwise}", wrap(&left, atomic));
                atomic = false;
                continue;
            }
            let Some(power) = binary_power(op) else { break };
            if power <= min {
                break;
            }
            self.next();
            let (right, right_atomic) = self.expression(power)?;
            left = format!("{} {op} {}", wrap(&left, atomic), wrap(&right, right_atomic));
            atomic = false;
        }
        self.depth -= 1;
        Ok((left, atomic))
    }

    fn unary(&mut self) -> Result<(String, bool), String> {
        match self.next() {
            None => Err("the expression ends too early".into()),
            Some(Token::Op("!")) => {
                let (operand, atomic) = self.unary()?;
                Ok((format!("!{}", wrap(&operand, atomic)), true))
            }
            Some(Token::Op("-")) => {
                let (operand, atomic) = self.unary()?;
                Ok((format!("-{}", wrap(&operand, atomic)), true))
            }
            Some(Token::Op("(")) => {
                let (inner, atomic) = self.expression(0)?;
                if self.next() != Some(Token::Op(")")) {
                    return Err("a \"(\" is not closed".into());
                }
                Ok((inner, atomic))
            }
            Some(Token::Number(n)) => Ok((n, true)),
            Some(Token::Str(s)) => Ok((quote(&s), true)),
            Some(Token::Name(name)) => match name.as_str() {
                "true" | "false" | "null" => Ok((name, true)),
                "in" => Err("the \"in\" operator is not supported".into()),
                _ => {
                    let resolved =
                        (self.resolve)(&name).ok_or_else(|| format!("{name:?} is not a bound property"))?;
                    if !self.used.contains(&name) {
                        self.used.push(name);
                    }
                    Ok((resolved, true))
                }
            },
            Some(token) => Err(format!("unexpected {}", token.describe())),
        }
    }
}

fn wrap(text: &str, atomic: bool) -> String {
    if atomic { text.to_owned() } else { format!("({text})") }
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(source: &str) -> Result<String, String> {
        translate(source, &|name| {
            (name == "temperature" || name == "alarm_status").then(|| format!("P.{name}"))
        })
        .map(|(text, _)| text)
    }

    #[test]
    fn twinmaker_statements_translate() {
        assert_eq!(tr("temperature >= 20").unwrap(), "P.temperature >= 20");
        assert_eq!(tr("alarm_status == 'ACTIVE'").unwrap(), "P.alarm_status == 'ACTIVE'");
        assert_eq!(tr("1==1").unwrap(), "1 == 1");
        assert_eq!(
            tr("!(temperature < 3) && alarm_status != \"it's\"").unwrap(),
            "!(P.temperature < 3) && (P.alarm_status != 'it\\'s')"
        );
        assert_eq!(tr("temperature > 1 ? 'hot' : 'cold'").unwrap(), "(P.temperature > 1) ? 'hot' : 'cold'");
    }

    #[test]
    fn jexl_precedence_is_kept_with_parentheses() {
        // Jexl: == and < bind alike, && and || bind alike, all left to right.
        assert_eq!(tr("1 < 2 == true").unwrap(), "(1 < 2) == true");
        assert_eq!(tr("true || false && false").unwrap(), "(true || false) && false");
        assert_eq!(tr("1 + 2 * 3").unwrap(), "1 + (2 * 3)");
    }

    #[test]
    fn unsupported_jexl_is_refused_with_a_reason() {
        for (source, reason) in [
            ("humidity > 3", "not a bound property"),
            ("temperature // 2", "integer division"),
            ("temperature ^ 2", "not supported"),
            ("'a' in alarm_status", "\"in\""),
            ("temperature|lower", "not supported"),
            ("temperature >=", "ends too early"),
            ("(temperature", "not closed"),
            ("'open", "not closed"),
            ("", "empty"),
            ("1 2", "unexpected"),
        ] {
            let error = tr(source).unwrap_err();
            assert!(error.contains(reason), "{source}: {error}");
        }
        assert!(tr(&"(".repeat(100)).unwrap_err().contains("deeply"));
    }
}
