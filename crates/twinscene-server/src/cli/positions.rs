//! Where a JSON pointer is in the original text, and which pointer a position is in: a small
//! scanner over the text (no tree is built), so that problems found on parsed values point at
//! lines and columns of the file a person edits. It tolerates broken JSON: it stops where the
//! text stops making sense and answers with what it found up to there.

/// A 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The line and column of a byte offset.
pub fn position_of(text: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position { line, column: before[line_start..].chars().count() + 1 }
}

/// The byte offset of a 1-based line and column as serde_json reports them (column in bytes).
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    floor_char_boundary(text, (start + column.saturating_sub(1)).min(text.len()))
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where the value at `pointer` starts, or, when `key` is given, where that key of the object at
/// `pointer` starts. A pointer that goes past what exists gives the deepest value that does.
pub fn locate(text: &str, pointer: &str, key: Option<&str>) -> Option<usize> {
    let mut tokens: Vec<String> = if pointer.is_empty() {
        Vec::new()
    } else {
        pointer.strip_prefix('/')?.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
    };
    let want_key = key.is_some();
    if let Some(key) = key {
        tokens.push(key.to_owned());
    }
    let mut scanner = Scanner { bytes: text.as_bytes(), at: 0 };
    scanner.skip_whitespace();
    let mut found = scanner.at;
    for (depth, token) in tokens.iter().enumerate() {
        let last_is_key = want_key && depth + 1 == tokens.len();
        match scanner.peek() {
            Some(b'{') => {
                scanner.at += 1;
                let Some((key_at, value_at)) = scanner.find_member(token) else { return Some(found) };
                if last_is_key {
                    return Some(key_at);
                }
                scanner.at = value_at;
            }
            Some(b'[') => {
                scanner.at += 1;
                let Ok(index) = token.parse::<usize>() else { return Some(found) };
                let Some(value_at) = scanner.find_item(index) else { return Some(found) };
                scanner.at = value_at;
            }
            _ => return Some(found),
        }
        found = scanner.at;
    }
    Some(found)
}

/// The pointer of the innermost value (or member key) that contains byte `offset`; for broken
/// JSON, of the value being read where the text breaks off.
pub fn pointer_at(text: &str, offset: usize) -> String {
    let mut scanner = Scanner { bytes: text.as_bytes(), at: 0 };
    let mut path = Vec::new();
    scanner.skip_whitespace();
    let _ = scanner.descend(offset, &mut path, 0);
    path.iter().map(|token| format!("/{}", token.replace('~', "~0").replace('/', "~1"))).collect()
}

struct Scanner<'t> {
    bytes: &'t [u8],
    at: usize,
}

/// Deeper nesting is not followed (serde_json refuses it anyway).
const MAX_DEPTH: usize = 256;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// After `{`: the key and value positions of member `name`, scanning past the others.
    fn find_member(&mut self, name: &str) -> Option<(usize, usize)> {
        loop {
            self.skip_whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            let key_at = self.at;
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_whitespace();
            if key == name {
                return Some((key_at, self.at));
            }
            self.skip_value(0)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                _ => return None,
            }
        }
    }

    /// After `[`: the position of item `index`.
    fn find_item(&mut self, index: usize) -> Option<usize> {
        for _ in 0..index {
            self.skip_whitespace();
            self.skip_value(0)?;
            self.skip_whitespace();
            if self.peek()? != b',' {
                return None;
            }
            self.at += 1;
        }
        self.skip_whitespace();
        (self.peek()? != b']').then_some(self.at)
    }

    /// A string starting at `"`, unescaped as far as pointers need (escapes kept but `\"`).
    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            let b = self.peek()?;
            self.at += 1;
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => break,
                _ => escaped = false,
            }
        }
        let raw = std::str::from_utf8(&self.bytes[start..self.at - 1]).ok()?;
        Some(if raw.contains('\\') {
            serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or_else(|_| raw.to_owned())
        } else {
            raw.to_owned()
        })
    }

    /// Moves past one value; `None` where the text breaks off or is not JSON.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.skip_whitespace();
                if self.peek()? == close {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    if open == b'{' {
                        self.string()?;
                        self.skip_whitespace();
                        if self.peek()? != b':' {
                            return None;
                        }
                        self.at += 1;
                        self.skip_whitespace();
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_whitespace();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b if b == close => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
                {
                    self.at += 1;
                }
                if self.at == start {
                    return None;
                }
            }
        }
        Some(())
    }

    /// Reads one value, extending `path` into the member or item that contains `offset`.
    /// `Err` stops the scan: the text broke off there, or `offset` was found (`path` names it).
    fn descend(&mut self, offset: usize, path: &mut Vec<String>, depth: usize) -> Result<(), ()> {
        let open = self.peek().ok_or(())?;
        if depth > MAX_DEPTH || !matches!(open, b'{' | b'[') {
            return self.skip_value(depth).ok_or(());
        }
        let close = if open == b'{' { b'}' } else { b']' };
        self.at += 1;
        let mut index = 0usize;
        loop {
            self.skip_whitespace();
            if self.peek().ok_or(())? == close {
                self.at += 1;
                return Ok(());
            }
            let item_start = self.at;
            let token = if open == b'{' {
                let key = self.string().ok_or(())?;
                path.push(key);
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return Err(());
                }
                self.at += 1;
                self.skip_whitespace();
                path.pop().unwrap_or_default()
            } else {
                index.to_string()
            };
            path.push(token);
            self.descend(offset, path, depth + 1)?;
            if (item_start..self.at).contains(&offset) {
                return Err(());
            }
            path.pop();
            index += 1;
            self.skip_whitespace();
            match self.peek().ok_or(())? {
                b',' => self.at += 1,
                b if b == close => {}
                _ => return Err(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"a\": [1, {\"b~c\": \"x\\\"y\", \"d/e\": true}],\n  \"é\": {\"f\": null}\n}";

    #[test]
    fn pointers_locate_values_and_keys() {
        let at = |pointer: &str| position_of(TEXT, locate(TEXT, pointer, None).unwrap());
        assert_eq!(at(""), Position { line: 1, column: 1 });
        assert_eq!(at("/a"), Position { line: 2, column: 8 });
        assert_eq!(at("/a/1/b~0c"), Position { line: 2, column: 20 });
        assert_eq!(at("/a/1/d~1e"), Position { line: 2, column: 35 });
        assert_eq!(at("/é/f"), Position { line: 3, column: 14 });
        // Past what exists: the deepest value that does.
        assert_eq!(at("/a/7"), Position { line: 2, column: 8 });
        assert_eq!(at("/a/1/zz"), Position { line: 2, column: 12 });
        let key = locate(TEXT, "/é", Some("f")).unwrap();
        assert_eq!(position_of(TEXT, key), Position { line: 3, column: 9 });
    }

    #[test]
    fn positions_map_back_to_pointers() {
        for pointer in ["/a/1/b~0c", "/a/1/d~1e", "/é/f", "/a/0"] {
            let offset = locate(TEXT, pointer, None).unwrap();
            assert_eq!(pointer_at(TEXT, offset), pointer);
        }
        let truncated = "{\"elements\": [{\"id\": \"x\", \"nodes\": [\"a\",";
        // Broken off before the next item starts: the list being read.
        assert_eq!(pointer_at(truncated, truncated.len()), "/elements/0/nodes");
        assert_eq!(pointer_at(&truncated[..truncated.len() - 2], truncated.len() - 3), "/elements/0/nodes/0");
        assert_eq!(pointer_at("", 0), "");
        assert_eq!(offset_of(TEXT, 3, 4), TEXT.find("é").unwrap());
    }
}
