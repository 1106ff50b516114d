//! The D-Bus Specification, "Type System" and its "Valid Signatures": a signature parsed
//! once into a tree of complete types, so that reading a value never scans its signature
//! again (an array of a million nested structures is walked once, not re-parsed per
//! element).

use std::ops::Range;

use super::marshal::Malformed;

/// The longest signature: its length is one byte on the wire.
const MAX_SIGNATURE: usize = 255;

/// How deep arrays may nest in one signature, and structures (dict entries count as
/// structures): 32 each, so at most 64 containers in all.
const MAX_ARRAY_NESTING: u32 = 32;
const MAX_STRUCT_NESTING: u32 = 32;

/// A type code of the specification's "Summary of types" table, with what this client
/// needs to know of it: the one table of types.
pub struct TypeCode {
    pub code: u8,
    /// Basic types are the only ones a dict entry's key may be.
    pub basic: bool,
    /// The boundary a value of the type starts on.
    pub alignment: usize,
    /// The size of a value, for the fixed types (strings, variants and arrays are sized
    /// by their data; a structure by its members).
    pub fixed_size: Option<usize>,
    /// What the dbus crate calls the type, in the text of an argument type mismatch that
    /// the backend has always reported.
    pub name: &'static str,
}

const fn basic(
    code: u8,
    alignment: usize,
    fixed_size: Option<usize>,
    name: &'static str,
) -> TypeCode {
    TypeCode {
        code,
        basic: true,
        alignment,
        fixed_size,
        name,
    }
}

const fn container(code: u8, alignment: usize, name: &'static str) -> TypeCode {
    TypeCode {
        code,
        basic: false,
        alignment,
        fixed_size: None,
        name,
    }
}

const TYPE_CODES: [TypeCode; 17] = [
    basic(b'y', 1, Some(1), "u8"),
    basic(b'b', 4, Some(4), "bool"),
    basic(b'n', 2, Some(2), "i16"),
    basic(b'q', 2, Some(2), "u16"),
    basic(b'i', 4, Some(4), "i32"),
    basic(b'u', 4, Some(4), "u32"),
    basic(b'x', 8, Some(8), "i64"),
    basic(b't', 8, Some(8), "u64"),
    basic(b'd', 8, Some(8), "f64"),
    basic(b'h', 4, Some(4), "File"),
    basic(b's', 4, None, "String"),
    basic(b'o', 4, None, "Path"),
    basic(b'g', 1, None, "Signature"),
    container(b'v', 1, "Variant"),
    container(b'a', 4, "Array/Dict"),
    container(b'(', 8, "Struct"),
    // A dict entry is laid out as a structure.
    container(b'{', 8, "Dict entry"),
];

/// The row of the type table for `code`, if it is a type code.
pub fn type_code(code: u8) -> Option<&'static TypeCode> {
    TYPE_CODES.iter().find(|row| row.code == code)
}

/// A single complete type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// A basic type, by its code: one of the type table's basic codes (the parser makes
    /// no other).
    Basic(u8),
    Variant,
    Array(Box<Type>),
    /// A structure, or a dict entry (its key and value): both are laid out alike.
    Struct(Vec<Type>),
}

impl Type {
    /// The row of the type table for this type (a structure's, for a dict entry).
    pub fn row(&self) -> &'static TypeCode {
        let code = match self {
            Type::Basic(code) => *code,
            Type::Variant => b'v',
            Type::Array(_) => b'a',
            Type::Struct(_) => b'(',
        };
        type_code(code).expect("a parsed type has a code of the type table")
    }

    /// The boundary a value of this type starts on.
    pub fn alignment(&self) -> usize {
        self.row().alignment
    }
}

impl Type {
    /// How many containers nest in a value of this type at most (a variant counts as one:
    /// what it holds is counted when it is read).
    pub fn depth(&self) -> u32 {
        match self {
            Type::Basic(_) => 0,
            Type::Variant => 1,
            Type::Array(element) => 1 + element.depth(),
            Type::Struct(members) => 1 + members.iter().map(Type::depth).max().unwrap_or(0),
        }
    }
}

/// Where the bytes of a value of a fixed-size type are (strings, variants and arrays are
/// sized by their data; every other type is fixed), from a start aligned for it: its size,
/// the padding inside it (to be nul bytes), and where its booleans are (to be 0 or 1).
/// What lets an array of such values be checked without walking the type per element.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub size: usize,
    pub padding: Vec<Range<usize>>,
    pub booleans: Vec<usize>,
}

impl Type {
    /// The layout of a value of this type, if its size is fixed.
    pub fn layout(&self) -> Option<Layout> {
        let mut layout = Layout::default();
        self.lay_out(&mut layout)?;
        Some(layout)
    }

    /// Adds a value of this type at the end of `layout`.
    fn lay_out(&self, layout: &mut Layout) -> Option<()> {
        let start = layout.size.next_multiple_of(self.alignment());
        if start > layout.size {
            layout.padding.push(layout.size..start);
        }
        layout.size = start;
        match self {
            Type::Struct(members) => {
                for member in members {
                    member.lay_out(layout)?;
                }
            }
            Type::Basic(code) => {
                if *code == b'b' {
                    layout.booleans.push(start);
                }
                layout.size += self.row().fixed_size?;
            }
            Type::Variant | Type::Array(_) => return None,
        }
        Some(())
    }
}

/// The complete types `signature` is a sequence of (a message body's signature).
pub fn parse(signature: &[u8]) -> Result<Vec<Type>, Malformed> {
    if signature.len() > MAX_SIGNATURE {
        return Err(Malformed);
    }
    let mut parser = Parser { rest: signature };
    let mut types = vec![];
    while !parser.rest.is_empty() {
        types.push(parser.complete(0, 0)?);
    }
    Ok(types)
}

/// The one complete type `signature` is (a variant's signature, a header field's).
pub fn single(signature: &[u8]) -> Result<Type, Malformed> {
    // Without collecting into a vector: a message may hold millions of variants.
    let mut parser = Parser { rest: signature };
    let only = parser.complete(0, 0)?;
    match parser.rest.is_empty() {
        true => Ok(only),
        false => Err(Malformed),
    }
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn next(&mut self) -> Result<u8, Malformed> {
        let (&code, rest) = self.rest.split_first().ok_or(Malformed)?;
        self.rest = rest;
        Ok(code)
    }

    /// The complete type that begins what is left, inside `arrays` arrays and `structs`
    /// structures.
    fn complete(&mut self, arrays: u32, structs: u32) -> Result<Type, Malformed> {
        match self.next()? {
            b'a' if arrays < MAX_ARRAY_NESTING => {
                if self.rest.first() == Some(&b'{') {
                    self.next()?;
                    return self.dict_entry(arrays + 1, structs);
                }
                Ok(Type::Array(Box::new(self.complete(arrays + 1, structs)?)))
            }
            b'(' if structs < MAX_STRUCT_NESTING => {
                let mut members = vec![];
                while self.rest.first() != Some(&b')') {
                    members.push(self.complete(arrays, structs + 1)?);
                }
                self.next()?;
                // An empty structure has no values to read: an array of them would never
                // advance.
                match members.is_empty() {
                    true => Err(Malformed),
                    false => Ok(Type::Struct(members)),
                }
            }
            b'v' => Ok(Type::Variant),
            code if type_code(code).is_some_and(|row| row.basic) => Ok(Type::Basic(code)),
            // Too deep, a closing bracket without its opening one, a dict entry outside an
            // array, or no type at all.
            _ => Err(Malformed),
        }
    }

    /// A dict entry after its `a{`: a basic key, one value, `}`.
    fn dict_entry(&mut self, arrays: u32, structs: u32) -> Result<Type, Malformed> {
        if structs >= MAX_STRUCT_NESTING {
            return Err(Malformed);
        }
        let key = self.complete(arrays, structs + 1)?;
        if !matches!(key, Type::Basic(_)) {
            return Err(Malformed);
        }
        let value = self.complete(arrays, structs + 1)?;
        match self.next()? {
            b'}' => Ok(Type::Array(Box::new(Type::Struct(vec![key, value])))),
            _ => Err(Malformed),
        }
    }
}

/// A byte in `structs` structures nested in `arrays` arrays: `aa((y))` for 2 and 2.
#[cfg(test)]
pub(super) fn nested(arrays: usize, structs: usize) -> String {
    format!(
        "{}{}y{}",
        "a".repeat(arrays),
        "(".repeat(structs),
        ")".repeat(structs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(signature: &str) -> bool {
        parse(signature.as_bytes()).is_ok()
    }

    #[test]
    fn the_specifications_valid_signatures_are_taken() {
        for signature in [
            "",
            "y",
            "as",
            "a{sv}",
            "(ii)",
            "a(yv)",
            "aa{s(ia{oy})}",
            "ssb",
        ] {
            assert!(valid(signature), "{signature}");
        }
        assert_eq!(
            parse(b"a{sv}").unwrap(),
            [Type::Array(Box::new(Type::Struct(vec![
                Type::Basic(b's'),
                Type::Variant
            ])))]
        );
    }

    #[test]
    fn empty_structures_are_refused() {
        for signature in ["()", "a()", "{}", "a{}", "(())", "((y)())"] {
            assert!(!valid(signature), "{signature}");
        }
    }

    #[test]
    fn dict_entries_only_in_arrays_with_a_basic_key() {
        for signature in [
            "{sv}", "(s{sv})", "a{vs}", "a{(y)s}", "a{ass}", "a{s}", "a{svy}", "a{sv",
        ] {
            assert!(!valid(signature), "{signature}");
        }
    }

    #[test]
    fn what_is_no_type_is_refused() {
        for signature in [
            "a", "(", "(y", ")", "y)", "}", "r", "e", "m", "*", "?", "@", "\0",
        ] {
            assert!(!valid(signature), "{signature:?}");
        }
    }

    #[test]
    fn thirty_two_arrays_and_thirty_two_structures_at_most() {
        assert!(valid(&nested(32, 32)));
        assert!(!valid(&nested(33, 0)));
        assert!(!valid(&nested(0, 33)));
        // A dict entry counts as a structure.
        let in_dict = format!("a{{s{}}}", nested(0, 31));
        assert!(valid(&in_dict));
        assert!(!valid(&format!("a{{s{}}}", nested(0, 32))));
    }

    #[test]
    fn a_signature_is_255_bytes_at_most() {
        assert!(valid(&"y".repeat(255)));
        assert!(!valid(&"y".repeat(256)));
    }

    #[test]
    fn fixed_types_are_laid_out_with_their_padding() {
        let layout = |signature: &str| single(signature.as_bytes()).unwrap().layout();
        assert_eq!(layout("s"), None);
        assert_eq!(layout("(yv)"), None);
        assert_eq!(
            layout("(ybqt)").unwrap(),
            Layout {
                size: 24,
                padding: vec![1..4, 10..16],
                booleans: vec![4],
            }
        );
        assert_eq!(
            layout("((((y))))").unwrap(),
            Layout {
                size: 1,
                ..Layout::default()
            }
        );
    }

    #[test]
    fn a_single_complete_type_where_one_is_required() {
        assert_eq!(
            single(b"ai").unwrap(),
            Type::Array(Box::new(Type::Basic(b'i')))
        );
        assert!(single(b"").is_err());
        assert!(single(b"ii").is_err());
    }
}
