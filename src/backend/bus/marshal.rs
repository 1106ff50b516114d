//! The D-Bus Specification, "Marshaling (Wire Format)": values read and written, each
//! aligned from the start of its message (a body starts 8-aligned, so from the body's start
//! too), with every limit the specification sets on them checked here, in one place.

use super::signature::{self, Layout, Type};

/// The longest message (128 MiB, 2^27 bytes): header, padding and body.
pub const MAX_MESSAGE: u32 = 1 << 27;

/// The longest array (64 MiB, 2^26 bytes), not counting the padding before its first
/// element.
pub const MAX_ARRAY: u32 = 1 << 26;

/// How deep containers may nest in a message, variants included: the 32 arrays and 32
/// structures a signature may nest, which a variant must not extend.
const MAX_DEPTH: u32 = 64;

/// A D-Bus value that breaks the wire format.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads D-Bus values from `data`, each aligned from its start.
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], big_endian: bool) -> Reader<'a> {
        Reader {
            data,
            at: 0,
            big_endian,
        }
    }

    /// Where the next value starts.
    pub fn at(&self) -> usize {
        self.at
    }

    /// Whether everything has been read.
    pub fn is_at_end(&self) -> bool {
        self.at == self.data.len()
    }

    /// Skips the padding up to the next multiple of `alignment`: nul bytes only.
    pub fn align(&mut self, alignment: usize) -> Result<(), Malformed> {
        let aligned = self
            .at
            .checked_next_multiple_of(alignment)
            .ok_or(Malformed)?;
        let padding = self.take(aligned - self.at)?;
        match padding.iter().all(|&byte| byte == 0) {
            true => Ok(()),
            false => Err(Malformed),
        }
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(count).ok_or(Malformed)?;
        let bytes = self.data.get(self.at..end).ok_or(Malformed)?;
        self.at = end;
        Ok(bytes)
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    /// `N` bytes, aligned to `N`, in the message's byte order.
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        self.align(N)?;
        let mut bytes: [u8; N] = self.take(N)?.try_into().map_err(|_| Malformed)?;
        if self.big_endian == cfg!(target_endian = "little") {
            bytes.reverse();
        }
        Ok(bytes)
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        self.fixed().map(u32::from_ne_bytes)
    }

    pub fn boolean(&mut self) -> Result<bool, Malformed> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }

    /// The text of `length` bytes and the nul after them: UTF-8 without a nul inside.
    fn text(&mut self, length: usize) -> Result<&'a str, Malformed> {
        let bytes = self.take(length)?;
        if self.u8()? != 0 || bytes.contains(&0) {
            return Err(Malformed);
        }
        std::str::from_utf8(bytes).map_err(|_| Malformed)
    }

    pub fn string(&mut self) -> Result<&'a str, Malformed> {
        let length = usize::try_from(self.u32()?).map_err(|_| Malformed)?;
        self.text(length)
    }

    /// An object path: `/`, or `/` followed by elements of `[A-Za-z0-9_]` separated by `/`.
    pub fn object_path(&mut self) -> Result<&'a str, Malformed> {
        let path = self.string()?;
        let valid = path == "/"
            || path.strip_prefix('/').is_some_and(|elements| {
                elements.split('/').all(|element| {
                    !element.is_empty()
                        && element
                            .bytes()
                            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
                })
            });
        match valid {
            true => Ok(path),
            false => Err(Malformed),
        }
    }

    /// A signature, which must be a valid one (of any number of complete types).
    pub fn signature(&mut self) -> Result<&'a str, Malformed> {
        let text = self.signature_text()?;
        signature::parse(text.as_bytes())?;
        Ok(text)
    }

    /// The single complete type a variant's signature (or a header field's) says.
    pub fn variant_type(&mut self) -> Result<Type, Malformed> {
        // Parsed once, as a single type: this runs for each of millions of variants.
        signature::single(self.signature_text()?.as_bytes())
    }

    /// The text of a signature, not yet checked as one.
    fn signature_text(&mut self) -> Result<&'a str, Malformed> {
        let length = usize::from(self.u8()?);
        self.text(length)
    }

    /// An array's length and the padding before its first element (present even when
    /// there is none): where the array ends.
    pub fn array(&mut self, element: &Type) -> Result<usize, Malformed> {
        let length = self.u32()?;
        if length > MAX_ARRAY {
            return Err(Malformed);
        }
        self.align(element.alignment())?;
        let length = usize::try_from(length).map_err(|_| Malformed)?;
        let end = self.at.checked_add(length).ok_or(Malformed)?;
        match end <= self.data.len() {
            true => Ok(end),
            false => Err(Malformed),
        }
    }

    /// An array of strings.
    pub fn strings(&mut self) -> Result<Vec<String>, Malformed> {
        let end = self.array(&Type::Basic(b's'))?;
        let mut strings = vec![];
        while self.at < end {
            strings.push(self.string()?.to_owned());
        }
        match self.at == end {
            true => Ok(strings),
            false => Err(Malformed),
        }
    }

    /// Checks and passes over a value of type `value_type`, inside `depth` containers: in
    /// time linear in the value's size, since `value_type` is a parsed tree.
    pub fn skip(&mut self, value_type: &Type, depth: u32) -> Result<(), Malformed> {
        match value_type {
            Type::Basic(b'b') => drop(self.boolean()?),
            Type::Basic(b's') => drop(self.string()?),
            Type::Basic(b'o') => drop(self.object_path()?),
            Type::Basic(b'g') => drop(self.signature()?),
            Type::Basic(_) => {
                // Any other basic type is fixed: its bytes, aligned to their size.
                let size = value_type.row().fixed_size.ok_or(Malformed)?;
                self.align(size)?;
                self.take(size)?;
            }
            Type::Variant => {
                let depth = nested(depth)?;
                let inner = self.variant_type()?;
                self.skip_variant_value(&inner, depth)?;
            }
            Type::Array(element) => {
                let depth = nested(depth)?;
                let end = self.array(element)?;
                let fixed = match self.at < end {
                    true => element.layout(),
                    false => None,
                };
                if let Some(layout) = fixed {
                    // Its elements' nesting is in the signature, which is within the limit.
                    return self.skip_fixed(&layout, element.alignment(), end);
                }
                while self.at < end {
                    let before = self.at;
                    self.skip(element, depth)?;
                    // Every valid type takes a byte at least; should one not, the array
                    // must fail rather than be read for ever.
                    if self.at == before {
                        return Err(Malformed);
                    }
                }
                if self.at != end {
                    return Err(Malformed);
                }
            }
            Type::Struct(members) => {
                let depth = nested(depth)?;
                self.align(8)?;
                for member in members {
                    self.skip(member, depth)?;
                }
            }
        }
        Ok(())
    }

    /// Checks and passes over the elements, up to `end`, of an array whose elements have
    /// the fixed `layout` and `alignment`: only their padding and booleans are looked at,
    /// without walking their type for each (a million structures nested 60 deep are one
    /// pass over their bytes, and an array of bytes none).
    fn skip_fixed(
        &mut self,
        layout: &Layout,
        alignment: usize,
        end: usize,
    ) -> Result<(), Malformed> {
        // Elements of no size (which no valid signature has) would never end the array.
        let stride = match layout.size.checked_next_multiple_of(alignment) {
            Some(0) | None => return Err(Malformed),
            Some(stride) => stride,
        };
        let elements = self.data.get(self.at..end).ok_or(Malformed)?;
        // Whole elements, with the padding between them and none after the last.
        let after_first = elements.len().checked_sub(layout.size).ok_or(Malformed)?;
        if after_first % stride != 0 {
            return Err(Malformed);
        }
        let mut zero = layout.padding.clone();
        zero.push(layout.size..stride);
        let checked = !layout.booleans.is_empty() || zero.iter().any(|range| !range.is_empty());
        if checked {
            for element in elements.chunks(stride) {
                // The padding after the element is not there after the last one.
                let padding = zero.iter().filter_map(|range| element.get(range.clone()));
                if !padding.flatten().all(|&byte| byte == 0) {
                    return Err(Malformed);
                }
                for &at in &layout.booleans {
                    Reader::new(&element[at..], self.big_endian).boolean()?;
                }
            }
        }
        self.at = end;
        Ok(())
    }

    /// Checks and passes over the value of a variant, of type `value_type`, inside `depth`
    /// containers (the variant's included): its type must not nest past the limit, even
    /// where the value holds nothing that deep (an empty array).
    pub fn skip_variant_value(&mut self, value_type: &Type, depth: u32) -> Result<(), Malformed> {
        match depth.checked_add(value_type.depth()) {
            Some(total) if total <= MAX_DEPTH => self.skip(value_type, depth),
            _ => Err(Malformed),
        }
    }
}

/// The depth inside one more container, if that is not too deep.
fn nested(depth: u32) -> Result<u32, Malformed> {
    match depth < MAX_DEPTH {
        true => Ok(depth + 1),
        false => Err(Malformed),
    }
}

/// Little-endian D-Bus values, each aligned from the start of the buffer.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn pad(&mut self, alignment: usize) {
        let aligned = self.0.len().next_multiple_of(alignment);
        self.0.resize(aligned, 0);
    }

    pub fn u32(&mut self, value: u32) {
        self.pad(4);
        self.0.extend(value.to_le_bytes());
    }

    /// A string (the caller's own texts: short, far below any limit).
    pub fn string(&mut self, text: &str) {
        self.u32(u32::try_from(text.len()).expect("a string under 4 GiB"));
        self.0.extend(text.as_bytes());
        self.0.push(0);
    }

    pub fn signature(&mut self, signature: &str) {
        self.0
            .push(u8::try_from(signature.len()).expect("a signature under 256 bytes"));
        self.0.extend(signature.as_bytes());
        self.0.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(signature: &str, data: &[u8]) -> Result<usize, Malformed> {
        let mut reader = Reader::new(data, false);
        reader.skip(&signature::single(signature.as_bytes())?, 0)?;
        Ok(reader.at())
    }

    #[test]
    fn padding_is_nul_bytes() {
        assert_eq!(skip("(yu)", &[1, 0, 0, 0, 2, 0, 0, 0]), Ok(8));
        assert_eq!(skip("(yu)", &[1, 0, 7, 0, 2, 0, 0, 0]), Err(Malformed));
        // The padding after an array's length, before its 8-aligned elements.
        assert_eq!(skip("at", &[0, 0, 0, 0, 0, 0, 0, 0]), Ok(8));
        assert_eq!(skip("at", &[0, 0, 0, 0, 1, 0, 0, 0]), Err(Malformed));
    }

    #[test]
    fn strings_are_utf8_without_nul_inside() {
        assert_eq!(skip("s", b"\x02\0\0\0ab\0"), Ok(7));
        assert_eq!(skip("s", b"\x02\0\0\0a\0\0"), Err(Malformed));
        assert_eq!(skip("s", b"\x02\0\0\0\xc3\x28\0"), Err(Malformed));
        assert_eq!(skip("s", b"\x02\0\0\0abc"), Err(Malformed), "no nul after");
    }

    #[test]
    fn object_paths_and_signatures_are_checked() {
        assert_eq!(skip("o", b"\x04\0\0\0/a_1\0"), Ok(9));
        for bad in [
            &b"\x00\0\0\0\0"[..],
            b"\x01\0\0\0a\0",
            b"\x02\0\0\0/a/\0",
            b"\x03\0\0\0/a-\0",
        ] {
            assert_eq!(skip("o", bad), Err(Malformed), "{bad:?}");
        }
        assert_eq!(skip("g", b"\x02a{\0"), Err(Malformed));
        assert_eq!(skip("g", b"\x02()\0"), Err(Malformed));
        assert_eq!(skip("g", b"\x02as\0"), Ok(4));
    }

    /// Types the signature parser refuses (an empty structure) still cannot hold the
    /// reader: an array of them fails.
    #[test]
    fn an_array_of_values_of_no_size_fails() {
        let nothing = Type::Array(Box::new(Type::Struct(vec![])));
        let data = [&8u32.to_le_bytes()[..], &[0; 12]].concat();
        assert_eq!(Reader::new(&data, false).skip(&nothing, 0), Err(Malformed));
    }

    #[test]
    fn booleans_are_0_or_1() {
        assert_eq!(skip("b", &[1, 0, 0, 0]), Ok(4));
        assert_eq!(skip("b", &[2, 0, 0, 0]), Err(Malformed));
        assert_eq!(skip("ab", &[8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]), Ok(12));
        assert_eq!(
            skip("ab", &[8, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]),
            Err(Malformed)
        );
    }

    /// Arrays of fixed-size values are checked without walking their type per element:
    /// as strictly as the elements one by one.
    #[test]
    fn arrays_of_fixed_values_are_checked_whole() {
        // Two (yq): a byte, a nul, two bytes; padding to 8 between them, none after.
        let array = [
            &[12, 0, 0, 0, 0, 0, 0, 0][..],
            &[1, 0, 2, 0, 0, 0, 0, 0],
            &[3, 0, 4, 0],
        ]
        .concat();
        assert_eq!(skip("a(yq)", &array), Ok(20));
        for at in [9, 12, 17] {
            let mut bad = array.clone();
            bad[at] = 1;
            assert_eq!(skip("a(yq)", &bad), Err(Malformed), "padding at {at}");
        }
        let mut cut = array.clone();
        cut[0] = 11;
        assert_eq!(
            skip("a(yq)", &cut[..19]),
            Err(Malformed),
            "a partial element"
        );
        let mut trailing = array.clone();
        trailing[0] = 16;
        trailing.extend([0; 4]);
        assert_eq!(
            skip("a(yq)", &trailing),
            Err(Malformed),
            "padding after the last"
        );
        assert_eq!(skip("ai", &[8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]), Ok(12));
        assert_eq!(skip("ai", &[6, 0, 0, 0, 1, 0, 0, 0, 2, 0]), Err(Malformed));
        assert_eq!(skip("ay", &[3, 0, 0, 0, 1, 2, 3]), Ok(7));
    }

    #[test]
    fn an_array_is_64_mib_at_most_and_within_the_data() {
        let mut data = (MAX_ARRAY + 1).to_le_bytes().to_vec();
        data.resize(data.len() + (1 << 26) + 1, 0);
        assert_eq!(skip("ay", &data), Err(Malformed));
        assert_eq!(skip("ay", &[8, 0, 0, 0, 1]), Err(Malformed));
        // An element that runs past the array's end.
        assert_eq!(skip("as", b"\x04\0\0\0\x01\0\0\0a\0"), Err(Malformed));
        assert_eq!(skip("ay", &MAX_ARRAY.to_le_bytes()), Err(Malformed));
    }

    /// Variants may not take a value past 64 nested containers.
    #[test]
    fn variants_count_toward_the_depth() {
        // A variant holding a variant ... holding a byte.
        let nest = |variants: usize| {
            let mut data = b"\x01v\0".repeat(variants - 1);
            data.extend(b"\x01y\0\x07");
            data
        };
        assert_eq!(skip("v", &nest(64)), Ok(64 * 3 + 1));
        assert_eq!(skip("v", &nest(65)), Err(Malformed));
    }

    #[test]
    fn an_array_length_near_4_gib_is_refused_without_overflow() {
        let mut reader = Reader::new(&[0xf8, 0xff, 0xff, 0xff, 0, 0, 0, 0], false);
        reader.at = 0;
        assert_eq!(reader.array(&Type::Basic(b'y')), Err(Malformed));
        let mut reader = Reader::new(b"\xff\xff\xff\xffabc", false);
        assert_eq!(reader.string(), Err(Malformed));
    }
}
