//! Reads a PyTorch `.pth` weights file (a pickled `state_dict`) without running any code.
//!
//! `torch.save` writes a Python pickle, and a pickle is a small program: a general
//! unpickler imports and calls whatever the file names. This reader is a restricted
//! unpickler that understands only what a `state_dict` needs (dicts, tuples, lists,
//! numbers, strings, `collections.OrderedDict` and torch's tensor rebuild functions) and
//! refuses every other global with [`PickleError::Forbidden`].
//!
//! Two container formats exist:
//! - **ZIP** (torch >= 1.6): `<name>/data.pkl` holds the pickle and each storage is the
//!   raw little-endian entry `<name>/data/<key>`.
//! - **Legacy** (one stream of pickles): the magic number, the protocol version (1001),
//!   a `sys_info` dict, the object itself, the list of storage keys, then for each key an
//!   8-byte little-endian element count and the raw bytes.
//!
//! In both, a tensor is `_rebuild_tensor_v2(storage, offset, size, stride, ..)` whose
//! storage comes from a persistent id `('storage', torch.FloatStorage, key, location,
//! numel[, view_metadata])`.
//!
//! Everything read from the file is bounds-checked: lengths are compared with the bytes
//! left in the file before anything is allocated, views are checked against their
//! storage, and values live in a flat arena (no recursion, so deep nesting cannot overflow
//! the stack), so a truncated or hostile file gives an error, never a panic.
//!
//! Why the product reads pickles itself rather than converting them at setup, as it does
//! EfficientNet-Lite's: the paper's AlexNet weights arrive at run time, not at setup
//! (`differnet fetch-weights alexnet` downloads torchvision's `.pth` when the user asks,
//! and `--backbone-weights` takes a `.pth` the user has), on machines where the product
//! runs without Python. Converting them would need torch at run time.

use crate::core::message::one_line;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One floating-point tensor of a `state_dict`, converted to contiguous row-major `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The `state_dict` key, e.g. `features.0.weight`.
    pub name: String,
    /// Size of each dimension, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements in row-major order (`shape.iter().product()` of them).
    pub data: Vec<f32>,
}

/// Why a PyTorch weights file could not be read. Every message ends with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The file could not be opened or read.
    #[error("cannot read PyTorch weights ({source}): {}", .path.display())]
    Io {
        /// The underlying error.
        source: io::Error,
        /// The file.
        path: PathBuf,
    },
    /// The file is neither a ZIP archive nor a legacy torch pickle stream.
    #[error("not a PyTorch weights file (bad magic): {}", .path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before the data it announces.
    #[error("PyTorch weights file is truncated: {}", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// The pickle names a Python global that a `state_dict` never needs, for example
    /// `os.system`. Nothing is ever imported or called.
    #[error("PyTorch weights refer to `{name}`, which a state_dict reader does not allow: {}", .path.display())]
    Forbidden {
        /// The global as `module.name`.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// The file is inconsistent (a bad opcode argument, a view outside its storage, ...).
    #[error("malformed PyTorch weights ({reason}): {}", .path.display())]
    Malformed {
        /// What is wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },
    /// The file is valid but uses something this reader does not handle (big-endian
    /// data, an unknown pickle opcode, an expanded view, ...).
    #[error("unsupported PyTorch weights ({what}): {}", .path.display())]
    Unsupported {
        /// What is not supported.
        what: String,
        /// The file.
        path: PathBuf,
    },
    /// The ZIP container could not be read.
    #[error("cannot read PyTorch ZIP archive ({source}): {}", .path.display())]
    Zip {
        /// The underlying error.
        source: zip::result::ZipError,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no floating-point tensors (neither at the top level nor under a
    /// `state_dict`, `model_state_dict` or `model` key).
    #[error("no floating-point tensors found in PyTorch weights: {}", .path.display())]
    NoTensors {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the floating-point tensors of a PyTorch `state_dict` file, in the file's order.
///
/// The file may be in the ZIP format (torch >= 1.6) or the legacy format (for example
/// `_use_new_zipfile_serialization=False`, or files written by old torch). The top-level
/// object must be a dict (usually an `OrderedDict`) whose values are tensors; a checkpoint
/// dict without tensors at its top level is searched under `state_dict`,
/// `model_state_dict` and `model` instead.
///
/// `float32` data is returned as is; `float64`, `float16` and `bfloat16` are converted to
/// `f32`. Integer and boolean tensors (such as BatchNorm's `num_batches_tracked`) are
/// skipped, as are non-tensor values. Strided views and storage offsets are resolved, so
/// every [`NamedTensor::data`] is contiguous.
///
/// # Errors
/// See [`PickleError`]; in particular any global other than the few a `state_dict` needs
/// gives [`PickleError::Forbidden`].
pub fn read_state_dict(path: &Path) -> Result<Vec<NamedTensor>, PickleError> {
    read_any(path).map_err(|fault| fault.at(path))
}

/// Reads the contents of a PyTorch weights file exactly as [`read_state_dict`] reads the
/// file; `path` only names the file in errors. This is what `fuzz/` exercises.
pub fn parse_state_dict(bytes: &[u8], path: &Path) -> Result<Vec<NamedTensor>, PickleError> {
    read_from(io::Cursor::new(bytes), bytes.len() as u64).map_err(|fault| fault.at(path))
}

// --- Errors without a path (attached once, at the top) --------------------------------

#[derive(Debug)]
enum Fault {
    Io(io::Error),
    Zip(zip::result::ZipError),
    BadMagic,
    Truncated,
    Forbidden(String),
    Malformed(String),
    Unsupported(String),
    NoTensors,
}

impl Fault {
    /// The error for the file at `path`. Names and keys read from the file go through
    /// [`one_line`], so that a hostile pickle cannot spread the message over many lines.
    fn at(self, path: &Path) -> PickleError {
        let path = path.to_path_buf();
        match self {
            Fault::Io(source) => PickleError::Io { source, path },
            Fault::Zip(source) => PickleError::Zip { source, path },
            Fault::BadMagic => PickleError::BadMagic { path },
            Fault::Truncated => PickleError::Truncated { path },
            Fault::Forbidden(name) => PickleError::Forbidden {
                name: one_line(&name),
                path,
            },
            Fault::Malformed(reason) => PickleError::Malformed {
                reason: one_line(&reason),
                path,
            },
            Fault::Unsupported(what) => PickleError::Unsupported {
                what: one_line(&what),
                path,
            },
            Fault::NoTensors => PickleError::NoTensors { path },
        }
    }
}

impl From<io::Error> for Fault {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Fault::Truncated
        } else {
            Fault::Io(error)
        }
    }
}

impl From<zip::result::ZipError> for Fault {
    fn from(error: zip::result::ZipError) -> Self {
        match error {
            zip::result::ZipError::Io(io) => io.into(),
            other => Fault::Zip(other),
        }
    }
}

fn malformed(reason: impl Into<String>) -> Fault {
    Fault::Malformed(reason.into())
}

// --- Limits ---------------------------------------------------------------------------

/// Most values one pickle may create. A real `state_dict` needs about 25 per tensor; the
/// cap keeps a hostile pickle of tiny opcodes from turning bytes into gigabytes.
const MAX_OBJECTS: usize = 1 << 23;
/// Largest `data.pkl` read from a ZIP archive (real ones are kilobytes).
const MAX_ZIP_PICKLE_BYTES: u64 = 256 << 20;
/// Longest `GLOBAL` module or name line.
const MAX_GLOBAL_LINE: usize = 256;
/// Bytes converted per read when loading a storage.
const CHUNK_BYTES: usize = 64 * 1024;

/// `0x1950a86a20f9469cfc6c` as the little-endian bytes of pickle's `LONG1`.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

// --- Element types --------------------------------------------------------------------

/// Element type of a storage, named by its `torch.<Kind>Storage` class in the pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// Converts one little-endian element (exactly `size()` bytes) of a float type.
    fn to_f32(self, bytes: &[u8]) -> f32 {
        match (self, bytes) {
            (DType::F32, &[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
            (DType::F64, &[a, b, c, d, e, f, g, h]) => {
                f64::from_le_bytes([a, b, c, d, e, f, g, h]) as f32
            }
            (DType::F16, &[a, b]) => f16_to_f32(u16::from_le_bytes([a, b])),
            (DType::BF16, &[a, b]) => f32::from_bits(u32::from(u16::from_le_bytes([a, b])) << 16),
            // Callers only pass float types and chunks of the right size.
            _ => f32::NAN,
        }
    }
}

/// IEEE half precision to single precision, exactly (every `f16` is an `f32`).
fn f16_to_f32(half: u16) -> f32 {
    let sign = u32::from(half >> 15) << 31;
    let exponent = u32::from((half >> 10) & 0x1f);
    let mantissa = u32::from(half & 0x3ff);
    match exponent {
        0 => {
            // Zero or subnormal: mantissa * 2^-24, exact in f32.
            let magnitude = mantissa as f32 * (1.0 / 16_777_216.0);
            if sign == 0 { magnitude } else { -magnitude }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)),
    }
}

// --- Input with a byte budget ---------------------------------------------------------

/// A reader that knows how many bytes are left, so that announced lengths are checked
/// before anything is allocated.
struct Input<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Input<R> {
    fn new(inner: R, len: u64) -> Self {
        Input {
            inner,
            remaining: len,
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let mut bytes = [0; N];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Fault> {
        Ok(self.array::<1>()?[0])
    }

    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, Fault> {
        if len > self.remaining {
            return Err(Fault::Truncated);
        }
        let len = usize::try_from(len).map_err(|_| Fault::Truncated)?;
        let mut bytes = vec![0; len];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    /// A `\n`-terminated line of at most [`MAX_GLOBAL_LINE`] bytes, without the `\n`.
    fn line(&mut self) -> Result<String, Fault> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\n' => break,
                byte if line.len() < MAX_GLOBAL_LINE => line.push(byte),
                _ => return Err(malformed("GLOBAL line too long")),
            }
        }
        String::from_utf8(line).map_err(|_| malformed("GLOBAL line is not UTF-8"))
    }

    fn skip(&mut self, len: u64) -> Result<(), Fault> {
        if len > self.remaining {
            return Err(Fault::Truncated);
        }
        let skipped = io::copy(&mut self.by_ref().take(len), &mut io::sink())?;
        if skipped == len {
            Ok(())
        } else {
            Err(Fault::Truncated)
        }
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        let len = buf.len().min(budget);
        let read = self.inner.read(&mut buf[..len])?;
        // `read <= len <= remaining`, so this cannot underflow.
        self.remaining -= read as u64;
        Ok(read)
    }
}

// --- Values ---------------------------------------------------------------------------

/// Index of a value in an [`Arena`]. Containers hold ids, so a memoized list that is
/// appended to later is seen changed through every reference, as in Python.
type Id = u32;

const NONE: Id = 0;
const TRUE: Id = 1;
const FALSE: Id = 2;

/// The few callables a `state_dict` pickle may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)` (old torch).
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    RebuildParameterWithState,
    /// `torch.<Kind>Storage`, only ever used as the type in a persistent id.
    StorageClass(DType),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Result<Self, Fault> {
        Ok(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch", class) => match DType::from_storage_class(class) {
                Some(dtype) => Global::StorageClass(dtype),
                None => return Err(Fault::Forbidden(format!("{module}.{name}"))),
            },
            _ => return Err(Fault::Forbidden(format!("{module}.{name}"))),
        })
    }
}

/// A storage as a persistent id describes it: `len` elements starting `offset` elements
/// into the root storage `key` of `numel` elements (`offset` is 0 except for the storage
/// views of very old legacy files).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StorageRef {
    key: String,
    dtype: DType,
    numel: u64,
    offset: u64,
    len: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view into a storage.
#[derive(Debug, Clone)]
struct TensorRef {
    storage: StorageRef,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as pickle's little-endian two's complement bytes.
    BigInt(Vec<u8>),
    /// A float; no float is ever needed from a state_dict, so only its place is kept.
    Float,
    Str(String),
    /// Python 2 `str` or `bytes`; accepted where a name is expected if it is UTF-8.
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key-value pairs in insertion order; a repeated key is resolved on extraction.
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(Box<StorageRef>),
    Tensor(Box<TensorRef>),
}

/// Every value of one pickle, in a flat vector (dropping it never recurses).
struct Arena {
    objs: Vec<Obj>,
}

impl Arena {
    fn new() -> Self {
        Arena {
            objs: vec![Obj::None, Obj::Bool(true), Obj::Bool(false)],
        }
    }

    fn add(&mut self, obj: Obj) -> Result<Id, Fault> {
        if self.objs.len() >= MAX_OBJECTS {
            return Err(Fault::Unsupported(format!(
                "pickle has more than {MAX_OBJECTS} values"
            )));
        }
        let id = Id::try_from(self.objs.len()).map_err(|_| malformed("too many values"))?;
        self.objs.push(obj);
        Ok(id)
    }

    fn get(&self, id: Id) -> &Obj {
        // Ids only come from `add`, so they are always in range.
        &self.objs[id as usize]
    }

    fn get_mut(&mut self, id: Id) -> &mut Obj {
        &mut self.objs[id as usize]
    }

    fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Obj::Int(value) => Some(*value),
            Obj::Bool(value) => Some(i64::from(*value)),
            _ => None,
        }
    }

    fn uint(&self, id: Id, what: &str) -> Result<u64, Fault> {
        self.int(id)
            .and_then(|value| u64::try_from(value).ok())
            .ok_or_else(|| malformed(format!("{what} is not a non-negative integer")))
    }

    fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(text) => Some(text),
            Obj::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    fn tuple(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Obj::Tuple(items) | Obj::List(items) => Some(items),
            _ => None,
        }
    }

    fn uints(&self, id: Id, what: &str) -> Result<Vec<u64>, Fault> {
        let items = self
            .tuple(id)
            .ok_or_else(|| malformed(format!("{what} is not a tuple")))?;
        items.iter().map(|&item| self.uint(item, what)).collect()
    }

    /// The value of the last entry named `key` in a dict.
    fn dict_get(&self, id: Id, key: &str) -> Option<Id> {
        match self.get(id) {
            Obj::Dict(pairs) => pairs
                .iter()
                .rev()
                .find(|&&(k, _)| self.str(k) == Some(key))
                .map(|&(_, value)| value),
            _ => None,
        }
    }
}

// --- The restricted unpickler ---------------------------------------------------------

/// Pickle opcodes (see CPython's `Lib/pickle.py`).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const FRAME: u8 = 0x95;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINFLOAT: u8 = b'G';
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const EMPTY_LIST: u8 = b']';
    pub const LIST: u8 = b'l';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const EMPTY_DICT: u8 = b'}';
    pub const DICT: u8 = b'd';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const MEMOIZE: u8 = 0x94;
    pub const GLOBAL: u8 = b'c';
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const REDUCE: u8 = b'R';
    pub const NEWOBJ: u8 = 0x81;
    pub const BUILD: u8 = b'b';
    pub const BINPERSID: u8 = b'Q';
}

/// The unpickler's machine state: a value stack split by marks, and the memo.
struct Machine {
    arena: Arena,
    stack: Vec<Id>,
    /// Stack heights at each open `MARK`; values below the last one cannot be popped.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Machine {
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, obj: Obj) -> Result<(), Fault> {
        let id = self.arena.add(obj)?;
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id, Fault> {
        if self.stack.len() <= self.floor() {
            return Err(malformed("pickle stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed("pickle stack underflow"))
    }

    fn top(&self) -> Result<Id, Fault> {
        if self.stack.len() <= self.floor() {
            return Err(malformed("pickle stack underflow"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| malformed("pickle stack underflow"))
    }

    /// Pops everything down to the last `MARK` and the mark itself.
    fn pop_mark(&mut self) -> Result<Vec<Id>, Fault> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed("pickle has no MARK to pop"))?;
        if mark > self.stack.len() {
            return Err(malformed("pickle MARK above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>, Fault> {
        if self.stack.len() < self.floor() + n {
            return Err(malformed("pickle stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_str(&mut self) -> Result<String, Fault> {
        let id = self.pop()?;
        self.arena
            .str(id)
            .map(str::to_owned)
            .ok_or_else(|| malformed("STACK_GLOBAL operand is not a string"))
    }

    fn memo_get(&mut self, index: u32) -> Result<(), Fault> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| malformed(format!("pickle memo {index} is missing")))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, index: u32) -> Result<(), Fault> {
        let id = self.top()?;
        self.memo.insert(index, id);
        Ok(())
    }

    fn append(&mut self, items: Vec<Id>) -> Result<(), Fault> {
        let list = self.top()?;
        match self.arena.get_mut(list) {
            Obj::List(values) => {
                values.extend(items);
                Ok(())
            }
            _ => Err(malformed("APPEND to a value that is not a list")),
        }
    }

    fn set_items(&mut self, items: Vec<Id>) -> Result<(), Fault> {
        if !items.len().is_multiple_of(2) {
            return Err(malformed("SETITEMS with an odd number of values"));
        }
        let dict = self.top()?;
        match self.arena.get_mut(dict) {
            Obj::Dict(pairs) => {
                pairs.extend(items.chunks_exact(2).map(|pair| (pair[0], pair[1])));
                Ok(())
            }
            _ => Err(malformed("SETITEM on a value that is not a dict")),
        }
    }

    fn int(&mut self, value: i64) -> Result<(), Fault> {
        self.push(Obj::Int(value))
    }

    /// Pickle's `LONG1`/`LONG4`: little-endian two's complement of any width.
    fn long(&mut self, bytes: Vec<u8>) -> Result<(), Fault> {
        if bytes.len() > 8 {
            return self.push(Obj::BigInt(bytes));
        }
        let negative = bytes.last().is_some_and(|&last| last & 0x80 != 0);
        let mut wide = if negative { [0xff; 8] } else { [0; 8] };
        wide[..bytes.len()].copy_from_slice(&bytes);
        self.int(i64::from_le_bytes(wide))
    }

    fn string(&mut self, bytes: Vec<u8>) -> Result<(), Fault> {
        let text = String::from_utf8(bytes).map_err(|_| malformed("string is not UTF-8"))?;
        self.push(Obj::Str(text))
    }

    /// `REDUCE`/`NEWOBJ`: applies one of the allowed callables to its argument tuple.
    fn reduce(&mut self, callable: Id, args: Id) -> Result<Id, Fault> {
        let Obj::Global(global) = *self.arena.get(callable) else {
            return Err(malformed("REDUCE on a value that is not a global"));
        };
        let args = self
            .arena
            .tuple(args)
            .ok_or_else(|| malformed("REDUCE arguments are not a tuple"))?
            .to_vec();
        match global {
            Global::OrderedDict => self.ordered_dict(&args),
            Global::RebuildTensor | Global::RebuildTensorV2 => {
                let arity_ok = match global {
                    Global::RebuildTensor => args.len() == 4,
                    _ => (6..=7).contains(&args.len()),
                };
                if !arity_ok {
                    return Err(malformed("tensor rebuild with wrong number of arguments"));
                }
                let tensor = self.tensor(&args)?;
                self.arena.add(Obj::Tensor(Box::new(tensor)))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                // A parameter is its data tensor; requires_grad and hooks do not matter.
                let data = *args
                    .first()
                    .ok_or_else(|| malformed("parameter rebuild without data"))?;
                match self.arena.get(data) {
                    Obj::Tensor(_) => Ok(data),
                    _ => Err(malformed("parameter rebuild whose data is not a tensor")),
                }
            }
            Global::StorageClass(_) => Err(Fault::Unsupported(
                "calling a storage class in a pickle".into(),
            )),
        }
    }

    /// `OrderedDict()` (Python 3) or `OrderedDict([[key, value], ...])` (Python 2).
    fn ordered_dict(&mut self, args: &[Id]) -> Result<Id, Fault> {
        let mut pairs = Vec::new();
        match args {
            [] => {}
            [items] => {
                let items = self
                    .arena
                    .tuple(*items)
                    .ok_or_else(|| malformed("OrderedDict argument is not a list"))?;
                for &item in items {
                    match self.arena.tuple(item) {
                        Some(&[key, value]) => pairs.push((key, value)),
                        _ => return Err(malformed("OrderedDict item is not a pair")),
                    }
                }
            }
            _ => return Err(malformed("OrderedDict with more than one argument")),
        }
        self.arena.add(Obj::Dict(pairs))
    }

    /// The leading `(storage, storage_offset, size, stride)` of a tensor rebuild.
    fn tensor(&self, args: &[Id]) -> Result<TensorRef, Fault> {
        let [storage, offset, shape, stride, ..] = *args else {
            return Err(malformed("tensor rebuild with too few arguments"));
        };
        let Obj::Storage(storage) = self.arena.get(storage) else {
            return Err(malformed("tensor rebuild whose storage is not a storage"));
        };
        let shape = self.arena.uints(shape, "tensor size")?;
        let stride = self.arena.uints(stride, "tensor stride")?;
        if shape.len() != stride.len() {
            return Err(malformed("tensor size and stride differ in length"));
        }
        Ok(TensorRef {
            storage: (**storage).clone(),
            offset: self.arena.uint(offset, "tensor storage offset")?,
            shape,
            stride,
        })
    }

    /// `BINPERSID`: `('storage', storage_class, key, location, numel[, view_metadata])`.
    fn persistent_load(&mut self, pid: Id) -> Result<Id, Fault> {
        let items = self
            .arena
            .tuple(pid)
            .ok_or_else(|| malformed("persistent id is not a tuple"))?
            .to_vec();
        match items.first().and_then(|&kind| self.arena.str(kind)) {
            Some("storage") => {}
            Some(other) => {
                return Err(Fault::Unsupported(format!(
                    "persistent id of type `{other}`"
                )));
            }
            None => return Err(malformed("persistent id without a type")),
        }
        let (class, key, numel, view) = match items[..] {
            [_, class, key, _location, numel] => (class, key, numel, NONE),
            [_, class, key, _location, numel, view] => (class, key, numel, view),
            _ => return Err(malformed("storage persistent id of the wrong length")),
        };
        let Obj::Global(Global::StorageClass(dtype)) = *self.arena.get(class) else {
            return Err(Fault::Unsupported(
                "storage persistent id without a known storage class".into(),
            ));
        };
        let key = self
            .arena
            .str(key)
            .ok_or_else(|| malformed("storage key is not a string"))?
            .to_owned();
        let numel = self.arena.uint(numel, "storage size")?;
        let (offset, len) = if view == NONE {
            (0, numel)
        } else {
            // Old legacy files: (view_key, offset, view_size), in elements.
            match self.arena.tuple(view) {
                Some(&[_view_key, offset, len]) => (
                    self.arena.uint(offset, "storage view offset")?,
                    self.arena.uint(len, "storage view size")?,
                ),
                _ => return Err(malformed("storage view metadata is not a triple")),
            }
        };
        if offset.checked_add(len).is_none_or(|end| end > numel) {
            return Err(malformed(format!("storage view outside storage {key}")));
        }
        self.arena.add(Obj::Storage(Box::new(StorageRef {
            key,
            dtype,
            numel,
            offset,
            len,
        })))
    }
}

/// Runs one pickle up to its `STOP` and returns its values and its result.
fn unpickle<R: Read>(input: &mut Input<R>) -> Result<(Arena, Id), Fault> {
    let mut m = Machine {
        arena: Arena::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let opcode = input.byte()?;
        if opcode == op::STOP {
            let result = m.pop()?;
            return Ok((m.arena, result));
        }
        // Each family reads nothing and answers false for an opcode not its own.
        let known = m.stack_op(opcode, input)?
            || m.number_op(opcode, input)?
            || m.text_op(opcode, input)?
            || m.container_op(opcode)?
            || m.memo_op(opcode, input)?
            || m.object_op(opcode, input)?;
        if !known {
            return Err(Fault::Unsupported(format!("pickle opcode 0x{opcode:02x}")));
        }
    }
}

impl Machine {
    /// `PROTO`, `FRAME`, `MARK`, `POP`, `POP_MARK` and `DUP`: framing and the stack itself.
    fn stack_op<R: Read>(&mut self, opcode: u8, input: &mut Input<R>) -> Result<bool, Fault> {
        match opcode {
            op::PROTO => {
                input.byte()?;
            }
            op::FRAME => {
                // Frames only help buffering; the opcodes inside follow as usual.
                input.array::<8>()?;
            }
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?;
                self.stack.push(top);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `None`, booleans, integers of every width and floats (kept as placeholders only).
    fn number_op<R: Read>(&mut self, opcode: u8, input: &mut Input<R>) -> Result<bool, Fault> {
        match opcode {
            op::NONE => self.stack.push(NONE),
            op::NEWTRUE => self.stack.push(TRUE),
            op::NEWFALSE => self.stack.push(FALSE),
            op::BININT => self.int(i64::from(i32::from_le_bytes(input.array()?)))?,
            op::BININT1 => self.int(i64::from(input.byte()?))?,
            op::BININT2 => self.int(i64::from(u16::from_le_bytes(input.array()?)))?,
            op::LONG1 => {
                let len = input.byte()?;
                self.long(input.bytes(u64::from(len))?)?;
            }
            op::LONG4 => {
                let len = i32::from_le_bytes(input.array()?);
                let len = u64::try_from(len).map_err(|_| malformed("negative LONG4 length"))?;
                self.long(input.bytes(len)?)?;
            }
            op::BINFLOAT => {
                input.array::<8>()?;
                self.push(Obj::Float)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Unicode strings and byte strings, each with its length in front.
    fn text_op<R: Read>(&mut self, opcode: u8, input: &mut Input<R>) -> Result<bool, Fault> {
        match opcode {
            op::BINUNICODE => {
                let len = u32::from_le_bytes(input.array()?);
                self.string(input.bytes(u64::from(len))?)?;
            }
            op::SHORT_BINUNICODE => {
                let len = input.byte()?;
                self.string(input.bytes(u64::from(len))?)?;
            }
            op::BINUNICODE8 => {
                let len = u64::from_le_bytes(input.array()?);
                self.string(input.bytes(len)?)?;
            }
            op::BINSTRING => {
                let len = i32::from_le_bytes(input.array()?);
                let len = u64::try_from(len).map_err(|_| malformed("negative BINSTRING length"))?;
                self.push(Obj::Bytes(input.bytes(len)?))?;
            }
            op::SHORT_BINSTRING | op::SHORT_BINBYTES => {
                let len = input.byte()?;
                self.push(Obj::Bytes(input.bytes(u64::from(len))?))?;
            }
            op::BINBYTES => {
                let len = u32::from_le_bytes(input.array()?);
                self.push(Obj::Bytes(input.bytes(u64::from(len))?))?;
            }
            op::BINBYTES8 => {
                let len = u64::from_le_bytes(input.array()?);
                self.push(Obj::Bytes(input.bytes(len)?))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts: made empty or from the stack, and filled from the stack.
    fn container_op(&mut self, opcode: u8) -> Result<bool, Fault> {
        match opcode {
            op::EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new()))?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let items = self.pop_n(usize::from(opcode - op::TUPLE1) + 1)?;
                self.push(Obj::Tuple(items))?;
            }
            op::EMPTY_LIST => self.push(Obj::List(Vec::new()))?,
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Obj::List(items))?;
            }
            op::APPEND => {
                let item = self.pop()?;
                self.append(vec![item])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            op::EMPTY_DICT => self.push(Obj::Dict(Vec::new()))?,
            op::DICT => {
                let items = self.pop_mark()?;
                if !items.len().is_multiple_of(2) {
                    return Err(malformed("DICT with an odd number of values"));
                }
                let pairs = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                self.push(Obj::Dict(pairs))?;
            }
            op::SETITEM => {
                let items = self.pop_n(2)?;
                self.set_items(items)?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `BINPUT`, `LONG_BINPUT`, `MEMOIZE`, `BINGET` and `LONG_BINGET`: the memo.
    fn memo_op<R: Read>(&mut self, opcode: u8, input: &mut Input<R>) -> Result<bool, Fault> {
        match opcode {
            op::BINPUT => self.memo_put(u32::from(input.byte()?))?,
            op::LONG_BINPUT => self.memo_put(u32::from_le_bytes(input.array()?))?,
            op::MEMOIZE => {
                let index = u32::try_from(self.memo.len()).map_err(|_| malformed("memo full"))?;
                self.memo_put(index)?;
            }
            op::BINGET => self.memo_get(u32::from(input.byte()?))?,
            op::LONG_BINGET => self.memo_get(u32::from_le_bytes(input.array()?))?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Allowed globals, calls of them, `BUILD` and persistent ids (the tensors' storages).
    fn object_op<R: Read>(&mut self, opcode: u8, input: &mut Input<R>) -> Result<bool, Fault> {
        match opcode {
            op::GLOBAL => {
                let module = input.line()?;
                let name = input.line()?;
                self.push(Obj::Global(Global::resolve(&module, &name)?))?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop_str()?;
                let module = self.pop_str()?;
                self.push(Obj::Global(Global::resolve(&module, &name)?))?;
            }
            op::REDUCE | op::NEWOBJ => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.reduce(callable, args)?;
                self.stack.push(result);
            }
            op::BUILD => {
                // Only an OrderedDict is ever built in a state_dict: its state is the
                // `_metadata` attribute (module versions), which weights do not need.
                self.pop()?;
                let target = self.top()?;
                if !matches!(self.arena.get(target), Obj::Dict(_)) {
                    return Err(Fault::Unsupported(
                        "BUILD on a value that is not a dict".into(),
                    ));
                }
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = self.persistent_load(pid)?;
                self.stack.push(storage);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

// --- From the unpickled object to a plan of tensors -----------------------------------

/// Keys under which a checkpoint dict may hold the `state_dict`, in order of preference.
const WRAPPER_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// The `(name, tensor)` entries of the state dict inside `root`, in insertion order, a
/// repeated name keeping its first position and its last value (as a Python dict does).
fn state_dict_entries(arena: &Arena, root: Id) -> Result<Vec<(String, &TensorRef)>, Fault> {
    let mut dict = root;
    // A checkpoint may wrap the state dict, perhaps twice; never search deeper.
    for _ in 0..3 {
        let Obj::Dict(pairs) = arena.get(dict) else {
            return Err(Fault::Unsupported(
                "the pickled object is not a dict of tensors".into(),
            ));
        };
        let mut entries: Vec<(String, &TensorRef)> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        for &(key, value) in pairs {
            let Obj::Tensor(tensor) = arena.get(value) else {
                continue;
            };
            let name = arena
                .str(key)
                .ok_or_else(|| malformed("a tensor's key is not a string"))?
                .to_owned();
            match position.get(&name) {
                Some(&index) => entries[index].1 = tensor,
                None => {
                    position.insert(name.clone(), entries.len());
                    entries.push((name, tensor));
                }
            }
        }
        if !entries.is_empty() {
            return Ok(entries);
        }
        let inner = WRAPPER_KEYS
            .iter()
            .filter_map(|key| arena.dict_get(dict, key))
            .find(|&inner| matches!(arena.get(inner), Obj::Dict(_)));
        match inner {
            Some(inner) => dict = inner,
            None => break,
        }
    }
    Err(Fault::NoTensors)
}

/// One output tensor: which storage elements to gather, checked against the storage.
#[derive(Debug)]
struct Plan {
    name: String,
    key: String,
    /// First element, counted from the start of the root storage.
    start: usize,
    /// Dimensions of size 1 removed (they do not move through memory).
    dims: Vec<(usize, usize)>,
    shape: Vec<usize>,
    numel: usize,
}

impl Plan {
    /// True when the elements are `start..start + numel` in order.
    fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for &(size, stride) in self.dims.iter().rev() {
            if stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }
}

fn to_usize(value: u64) -> Result<usize, Fault> {
    usize::try_from(value).map_err(|_| Fault::Unsupported("tensor too large".into()))
}

/// Checks a tensor's view against its storage and says what to gather.
fn plan(name: String, tensor: &TensorRef) -> Result<Plan, Fault> {
    let storage = &tensor.storage;
    let bad = |what: &str| malformed(format!("tensor {name}: {what}"));
    let mut numel: u64 = 1;
    for &size in &tensor.shape {
        numel = numel
            .checked_mul(size)
            .ok_or_else(|| bad("size overflows"))?;
    }
    if numel > 0 {
        let mut last = tensor.offset;
        for (&size, &stride) in tensor.shape.iter().zip(&tensor.stride) {
            last = (size - 1)
                .checked_mul(stride)
                .and_then(|step| last.checked_add(step))
                .ok_or_else(|| bad("view overflows"))?;
        }
        if last >= storage.len {
            return Err(bad("view reaches past the end of its storage"));
        }
        if numel > storage.len {
            // Only an expanded (stride 0) or self-overlapping view can hold more elements
            // than its storage; refusing it bounds what is allocated by the file's size.
            return Err(Fault::Unsupported(format!(
                "tensor {name} is an expanded view larger than its storage"
            )));
        }
    }
    let dims = tensor
        .shape
        .iter()
        .zip(&tensor.stride)
        .filter(|&(&size, _)| size != 1)
        .map(|(&size, &stride)| Ok((to_usize(size)?, to_usize(stride)?)))
        .collect::<Result<Vec<_>, Fault>>()?;
    Ok(Plan {
        start: to_usize(storage.offset + tensor.offset)?,
        dims,
        shape: tensor
            .shape
            .iter()
            .map(|&size| to_usize(size))
            .collect::<Result<_, _>>()?,
        numel: to_usize(numel)?,
        key: storage.key.clone(),
        name,
    })
}

/// The plans of the floating-point tensors, and the storages they need.
fn plan_all(
    entries: Vec<(String, &TensorRef)>,
) -> Result<(Vec<Plan>, HashMap<String, StorageSpec>), Fault> {
    let mut plans = Vec::new();
    let mut needed = HashMap::new();
    for (name, tensor) in entries {
        if !tensor.storage.dtype.is_float() {
            continue;
        }
        note_storage(&mut needed, &tensor.storage)?;
        plans.push(plan(name, tensor)?);
    }
    if plans.is_empty() {
        return Err(Fault::NoTensors);
    }
    Ok((plans, needed))
}

/// What a storage holds, as its persistent ids say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StorageSpec {
    dtype: DType,
    numel: u64,
}

fn note_storage(
    specs: &mut HashMap<String, StorageSpec>,
    storage: &StorageRef,
) -> Result<(), Fault> {
    let spec = StorageSpec {
        dtype: storage.dtype,
        numel: storage.numel,
    };
    match specs.get(&storage.key) {
        Some(known) if *known != spec => Err(malformed(format!(
            "storage {} is described two different ways",
            storage.key
        ))),
        Some(_) => Ok(()),
        None => {
            specs.insert(storage.key.clone(), spec);
            Ok(())
        }
    }
}

/// Reads `spec.numel` little-endian elements and converts them to `f32`.
///
/// The caller has checked that the bytes exist (or, for a compressed ZIP entry, that they
/// are announced); `max_prealloc` bounds the up-front allocation by the file's size.
fn read_floats(
    reader: &mut impl Read,
    spec: StorageSpec,
    max_prealloc: u64,
) -> Result<Vec<f32>, Fault> {
    let elem = spec.dtype.size();
    let mut left = spec
        .numel
        .checked_mul(elem)
        .ok_or_else(|| malformed("storage size overflows"))?;
    let capacity = to_usize(spec.numel.min(max_prealloc / elem))?;
    let mut out = Vec::with_capacity(capacity);
    let mut buf = vec![0u8; CHUNK_BYTES];
    while left > 0 {
        // CHUNK_BYTES is a multiple of every element size.
        let len = usize::try_from(left).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
        reader.read_exact(&mut buf[..len])?;
        out.extend(
            buf[..len]
                .chunks_exact(elem as usize)
                .map(|bytes| spec.dtype.to_f32(bytes)),
        );
        left -= len as u64;
    }
    Ok(out)
}

/// Builds the output tensors from the loaded storages, moving a storage instead of
/// copying it when its last user is a plain contiguous view of all of it.
fn assemble(
    plans: Vec<Plan>,
    mut storages: HashMap<String, Vec<f32>>,
) -> Result<Vec<NamedTensor>, Fault> {
    let mut users: HashMap<&str, usize> = HashMap::new();
    for plan in &plans {
        *users.entry(plan.key.as_str()).or_default() += 1;
    }
    let mut users: HashMap<String, usize> = users
        .into_iter()
        .map(|(key, count)| (key.to_owned(), count))
        .collect();
    let mut tensors = Vec::with_capacity(plans.len());
    for plan in plans {
        let missing = || {
            malformed(format!(
                "storage {} of tensor {} is missing",
                plan.key, plan.name
            ))
        };
        let users_left = users.get_mut(&plan.key).ok_or_else(missing)?;
        *users_left -= 1;
        let last_user = *users_left == 0;
        let source = storages.get(&plan.key).ok_or_else(missing)?;
        let whole = plan.start == 0 && plan.numel == source.len() && plan.is_contiguous();
        let data = if last_user && whole {
            storages.remove(&plan.key).ok_or_else(missing)?
        } else {
            let data = gather(source, &plan)?;
            if last_user {
                storages.remove(&plan.key);
            }
            data
        };
        tensors.push(NamedTensor {
            name: plan.name,
            shape: plan.shape,
            data,
        });
    }
    Ok(tensors)
}

/// Copies a strided view into a new contiguous vector.
fn gather(source: &[f32], plan: &Plan) -> Result<Vec<f32>, Fault> {
    let out_of_range = || malformed(format!("tensor {} reaches past its storage", plan.name));
    if plan.numel == 0 {
        return Ok(Vec::new());
    }
    if plan.is_contiguous() {
        return source
            .get(plan.start..plan.start + plan.numel)
            .map(<[f32]>::to_vec)
            .ok_or_else(out_of_range);
    }
    let mut out = Vec::with_capacity(plan.numel);
    let mut index = vec![0usize; plan.dims.len()];
    let mut offset = plan.start;
    for _ in 0..plan.numel {
        out.push(*source.get(offset).ok_or_else(out_of_range)?);
        // Odometer over the dimensions, innermost fastest. Wrapping arithmetic: the
        // offset may step one stride past the view before it is wound back.
        for (dim, &(size, stride)) in plan.dims.iter().enumerate().rev() {
            index[dim] += 1;
            offset = offset.wrapping_add(stride);
            if index[dim] < size {
                break;
            }
            index[dim] = 0;
            offset = offset.wrapping_sub(stride.wrapping_mul(size));
        }
    }
    Ok(out)
}

// --- The two containers ---------------------------------------------------------------

fn read_any(path: &Path) -> Result<Vec<NamedTensor>, Fault> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    read_from(file, file_len)
}

/// Reads a weights file from `reader`, which holds `len` bytes.
fn read_from<R: Read + Seek>(mut reader: R, len: u64) -> Result<Vec<NamedTensor>, Fault> {
    let mut head = [0u8; 4];
    let head_len = read_up_to(&mut reader, &mut head)?;
    reader.seek(SeekFrom::Start(0))?;
    if head[..head_len] == *b"PK\x03\x04" {
        read_zip(reader, len)
    } else {
        read_legacy(reader, len)
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

fn read_zip<R: Read + Seek>(file: R, file_len: u64) -> Result<Vec<NamedTensor>, Fault> {
    let mut archive = zip::ZipArchive::new(BufReader::new(file))?;
    // `file_names` has no fixed order; there is one candidate in any torch.save file, and
    // taking the smallest keeps an odd archive with several deterministic.
    let pickle_name = archive
        .file_names()
        .filter(|name| name.ends_with("/data.pkl") && name.matches('/').count() == 1)
        .min()
        .map(str::to_owned)
        .ok_or_else(|| malformed("ZIP archive without <name>/data.pkl"))?;
    let prefix = &pickle_name[..pickle_name.len() - "/data.pkl".len()];

    match archive.by_name(&format!("{prefix}/byteorder")) {
        Ok(entry) => {
            let mut order = Vec::new();
            entry.take(16).read_to_end(&mut order)?;
            if order.trim_ascii() != b"little" {
                return Err(Fault::Unsupported("big-endian storages".into()));
            }
        }
        // Files from before torch 1.12 have no byteorder record: little-endian.
        Err(zip::result::ZipError::FileNotFound) => {}
        Err(error) => return Err(error.into()),
    }

    let mut pickle = Vec::new();
    archive
        .by_name(&pickle_name)?
        .take(MAX_ZIP_PICKLE_BYTES + 1)
        .read_to_end(&mut pickle)?;
    if pickle.len() as u64 > MAX_ZIP_PICKLE_BYTES {
        return Err(Fault::Unsupported("data.pkl larger than 256 MiB".into()));
    }
    let pickle_len = pickle.len() as u64;
    let (arena, root) = unpickle(&mut Input::new(&pickle[..], pickle_len))?;
    let (plans, needed) = plan_all(state_dict_entries(&arena, root)?)?;
    drop(arena);

    let mut storages = HashMap::new();
    for (key, spec) in needed {
        let name = format!("{prefix}/data/{key}");
        let entry = match archive.by_name(&name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(malformed(format!(
                    "storage {key} is missing from the archive"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let nbytes = spec
            .numel
            .checked_mul(spec.dtype.size())
            .ok_or_else(|| malformed("storage size overflows"))?;
        if entry.size() < nbytes {
            return Err(malformed(format!(
                "storage {key} is shorter than its tensors"
            )));
        }
        let data = read_floats(&mut entry.take(nbytes), spec, file_len)?;
        storages.insert(key, data);
    }
    assemble(plans, storages)
}

fn read_legacy<R: Read>(file: R, file_len: u64) -> Result<Vec<NamedTensor>, Fault> {
    let mut reader = BufReader::new(file);

    // The magic number pickle is 15 bytes at protocol 2; 64 leaves room for framing and
    // keeps a large non-torch file from being parsed at all.
    let mut head = Input::new(&mut reader, file_len.min(64));
    let magic_ok = match unpickle(&mut head) {
        Ok((arena, root)) => {
            matches!(arena.get(root), Obj::BigInt(bytes) if bytes[..] == LEGACY_MAGIC)
        }
        Err(_) => false,
    };
    if !magic_ok {
        return Err(Fault::BadMagic);
    }
    let used = file_len.min(64) - head.remaining;
    let mut input = Input::new(reader, file_len - used);

    let (arena, root) = unpickle(&mut input)?;
    match arena.int(root) {
        Some(LEGACY_PROTOCOL_VERSION) => {}
        _ => return Err(Fault::Unsupported("legacy format protocol version".into())),
    }
    let (arena, sys_info) = unpickle(&mut input)?;
    if arena
        .dict_get(sys_info, "little_endian")
        .is_some_and(|id| id == FALSE)
    {
        return Err(Fault::Unsupported("big-endian storages".into()));
    }

    let (arena, root) = unpickle(&mut input)?;
    // Every storage in the file is listed below, including those of tensors we skip, so
    // their element sizes are needed to step over them.
    let mut all_storages = HashMap::new();
    for obj in &arena.objs {
        if let Obj::Storage(storage) = obj {
            note_storage(&mut all_storages, storage)?;
        }
    }
    let (plans, needed) = plan_all(state_dict_entries(&arena, root)?)?;
    drop(arena);

    let (arena, keys) = unpickle(&mut input)?;
    let keys = arena
        .tuple(keys)
        .ok_or_else(|| malformed("storage key list is not a list"))?
        .iter()
        .map(|&key| arena.str(key).map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| malformed("storage key is not a string"))?;
    drop(arena);

    let mut storages = HashMap::new();
    for key in keys {
        let spec = *all_storages
            .get(&key)
            .ok_or_else(|| malformed(format!("storage {key} is listed but never used")))?;
        let count = u64::from_le_bytes(input.array()?);
        if count != spec.numel {
            return Err(malformed(format!(
                "storage {key} holds {count} elements, its tensors say {}",
                spec.numel
            )));
        }
        let nbytes = count
            .checked_mul(spec.dtype.size())
            .ok_or_else(|| malformed("storage size overflows"))?;
        if nbytes > input.remaining {
            return Err(Fault::Truncated);
        }
        if needed.contains_key(&key) && !storages.contains_key(&key) {
            let data = read_floats(&mut input, spec, file_len)?;
            storages.insert(key, data);
        } else {
            input.skip(nbytes)?;
        }
    }
    assemble(plans, storages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Writes pickle opcodes by hand, as `torch.save` would at protocol 2.
    #[derive(Default)]
    struct Pickle(Vec<u8>);

    impl Pickle {
        fn new() -> Self {
            Pickle(vec![op::PROTO, 2])
        }
        fn op(mut self, opcode: u8) -> Self {
            self.0.push(opcode);
            self
        }
        fn str(mut self, text: &str) -> Self {
            self.0.push(op::BINUNICODE);
            self.0.extend((text.len() as u32).to_le_bytes());
            self.0.extend(text.as_bytes());
            self
        }
        fn int(mut self, value: i32) -> Self {
            self.0.push(op::BININT);
            self.0.extend(value.to_le_bytes());
            self
        }
        fn global(mut self, module: &str, name: &str) -> Self {
            self.0.push(op::GLOBAL);
            self.0.extend(format!("{module}\n{name}\n").as_bytes());
            self
        }
        fn ints(self, values: &[i32]) -> Self {
            values
                .iter()
                .fold(self.op(op::MARK), |p, &v| p.int(v))
                .op(op::TUPLE)
        }
        /// `_rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())`
        /// with a legacy persistent id (with its trailing `None` view metadata).
        fn tensor(
            self,
            key: &str,
            class: &str,
            numel: i32,
            offset: i32,
            shape: &[i32],
            stride: &[i32],
        ) -> Self {
            self.global("torch._utils", "_rebuild_tensor_v2")
                .op(op::MARK)
                .op(op::MARK)
                .str("storage")
                .global("torch", class)
                .str(key)
                .str("cpu")
                .int(numel)
                .op(op::NONE)
                .op(op::TUPLE)
                .op(op::BINPERSID)
                .int(offset)
                .ints(shape)
                .ints(stride)
                .op(op::NEWFALSE)
                .global("collections", "OrderedDict")
                .op(op::EMPTY_TUPLE)
                .op(op::REDUCE)
                .op(op::TUPLE)
                .op(op::REDUCE)
        }
        fn stop(self) -> Vec<u8> {
            self.op(op::STOP).0
        }
    }

    /// A legacy-format file around `main` whose storages are `(key, element bytes)`.
    fn legacy_file(main: Vec<u8>, storages: &[(&str, u64, Vec<u8>)]) -> Vec<u8> {
        let mut file = vec![op::PROTO, 2, op::LONG1, 10];
        file.extend(LEGACY_MAGIC);
        file.push(op::STOP);
        file.extend([op::PROTO, 2, op::BININT2, 0xe9, 0x03, op::STOP]);
        file.extend(Pickle::new().op(op::EMPTY_DICT).stop());
        file.extend(main);
        let keys = storages
            .iter()
            .fold(
                Pickle::new().op(op::EMPTY_LIST).op(op::MARK),
                |p, (key, ..)| p.str(key),
            )
            .op(op::APPENDS)
            .stop();
        file.extend(keys);
        for (_, count, bytes) in storages {
            file.extend(count.to_le_bytes());
            file.extend(bytes);
        }
        file
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// `{"w": 2x3 transposed view of [0..6], "n": int64 scalar, "b": [2.0, 3.0] at offset 2}`
    fn small_legacy_file() -> Vec<u8> {
        let main = Pickle::new()
            .global("collections", "OrderedDict")
            .op(op::EMPTY_TUPLE)
            .op(op::REDUCE)
            .op(op::MARK)
            .str("w")
            .tensor("k0", "FloatStorage", 6, 0, &[2, 3], &[1, 2])
            .str("n")
            .tensor("k1", "LongStorage", 1, 0, &[], &[])
            .str("b")
            .tensor("k0", "FloatStorage", 6, 2, &[2], &[1])
            .op(op::SETITEMS)
            .stop();
        legacy_file(
            main,
            &[
                ("k0", 6, f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
                ("k1", 1, 7i64.to_le_bytes().to_vec()),
            ],
        )
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    }

    #[test]
    fn reads_hand_made_legacy_file_with_strides_offsets_and_skipped_ints() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "small.pth", &small_legacy_file());
        let tensors = read_state_dict(&path).unwrap();
        assert_eq!(
            tensors,
            vec![
                NamedTensor {
                    name: "w".into(),
                    shape: vec![2, 3],
                    data: vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0],
                },
                NamedTensor {
                    name: "b".into(),
                    shape: vec![2],
                    data: vec![2.0, 3.0],
                },
            ]
        );
    }

    #[test]
    fn bytes_read_like_the_file() {
        let bytes = small_legacy_file();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "small.pth", &bytes);
        let name = Path::new("in-memory.pth");
        assert_eq!(
            parse_state_dict(&bytes, name).unwrap(),
            read_state_dict(&path).unwrap()
        );
        let error = parse_state_dict(&bytes[..bytes.len() / 2], name).unwrap_err();
        assert_eq!(
            error.to_string(),
            "PyTorch weights file is truncated: in-memory.pth"
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = small_legacy_file();
        let dir = tempfile::tempdir().unwrap();
        for len in 0..bytes.len() {
            let path = write(dir.path(), "cut.pth", &bytes[..len]);
            let error = read_state_dict(&path).expect_err("a truncated file must not load");
            if len > 15 {
                assert!(
                    matches!(error, PickleError::Truncated { .. }),
                    "cut at {len}: {error}"
                );
            }
            assert!(error.to_string().ends_with(&path.display().to_string()));
        }
    }

    #[test]
    fn os_system_is_forbidden_and_never_run() {
        let main = Pickle::new()
            .global("os", "system")
            .op(op::MARK)
            .str("touch /tmp/pwned")
            .op(op::TUPLE)
            .op(op::REDUCE)
            .stop();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "evil.pth", &legacy_file(main, &[]));
        let error = read_state_dict(&path).unwrap_err();
        assert!(
            matches!(&error, PickleError::Forbidden { name, .. } if name == "os.system"),
            "{error}"
        );
        assert!(error.to_string().ends_with("evil.pth"), "{error}");
    }

    #[test]
    fn stack_global_is_checked_too() {
        let main = Pickle::new()
            .str("builtins")
            .str("eval")
            .op(op::STACK_GLOBAL)
            .stop();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "evil.pth", &legacy_file(main, &[]));
        let error = read_state_dict(&path).unwrap_err();
        assert!(
            matches!(&error, PickleError::Forbidden { name, .. } if name == "builtins.eval"),
            "{error}"
        );
    }

    #[test]
    fn names_from_the_file_stay_on_one_short_line() {
        // A global named with line breaks and a screenful of text.
        let name = format!("x\n\u{1b}[2J{}", "y".repeat(5000));
        let main = Pickle::new()
            .str("os")
            .str(&name)
            .op(op::STACK_GLOBAL)
            .stop();
        let error = parse_state_dict(&legacy_file(main, &[]), Path::new("evil.pth")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("PyTorch weights refer to `os.x; \\u{1b}[2Jyyy"),
            "{text}"
        );
        assert!(text.ends_with("…`, which a state_dict reader does not allow: evil.pth"));
        assert!(!text.contains('\n'));
        assert!(text.chars().count() < 300, "{}", text.len());
    }

    #[test]
    fn bad_magic_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "notes.txt", b"hello, this is not a checkpoint");
        let error = read_state_dict(&path).unwrap_err();
        assert!(matches!(error, PickleError::BadMagic { .. }));
        assert_eq!(
            error.to_string(),
            format!("not a PyTorch weights file (bad magic): {}", path.display())
        );
    }

    #[test]
    fn huge_announced_lengths_fail_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // A string announcing 4 GiB in a file of a few bytes.
        let mut main = vec![op::PROTO, 2, op::BINUNICODE8];
        main.extend(u64::MAX.to_le_bytes());
        let path = write(dir.path(), "long.pth", &legacy_file(main, &[]));
        assert!(matches!(
            read_state_dict(&path).unwrap_err(),
            PickleError::Truncated { .. }
        ));
        // A storage announcing 2^40 elements.
        let main = Pickle::new()
            .op(op::EMPTY_DICT)
            .str("w")
            .tensor("k0", "FloatStorage", i32::MAX, 0, &[2], &[1])
            .op(op::SETITEM)
            .stop();
        let path = write(
            dir.path(),
            "big.pth",
            &legacy_file(main, &[("k0", i32::MAX as u64, f32_bytes(&[1.0, 2.0]))]),
        );
        assert!(matches!(
            read_state_dict(&path).unwrap_err(),
            PickleError::Truncated { .. }
        ));
    }

    #[test]
    fn views_outside_their_storage_are_rejected() {
        let main = Pickle::new()
            .op(op::EMPTY_DICT)
            .str("w")
            .tensor("k0", "FloatStorage", 4, 1, &[2, 2], &[2, 1])
            .op(op::SETITEM)
            .stop();
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "view.pth",
            &legacy_file(main, &[("k0", 4, f32_bytes(&[1.0, 2.0, 3.0, 4.0]))]),
        );
        let error = read_state_dict(&path).unwrap_err();
        assert!(matches!(error, PickleError::Malformed { .. }), "{error}");
    }

    #[test]
    fn deep_nesting_and_shared_references_stay_cheap() {
        // 100k nested lists: no recursion anywhere, so no stack overflow on drop.
        let mut main = Pickle::new();
        for _ in 0..100_000 {
            main = main.op(op::EMPTY_LIST);
        }
        for _ in 1..100_000 {
            main = main.op(op::APPEND);
        }
        let main = main.stop();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "deep.pth", &legacy_file(main, &[]));
        assert!(matches!(
            read_state_dict(&path).unwrap_err(),
            PickleError::Unsupported { .. }
        ));
    }

    #[test]
    fn reads_hand_made_zip_file() {
        let main = Pickle::new()
            .op(op::EMPTY_DICT)
            .str("conv.weight")
            .tensor("0", "HalfStorage", 3, 0, &[3], &[1])
            .op(op::SETITEM)
            .stop();
        // The ZIP format's persistent ids have five items, not six: drop the `None`.
        let main = {
            let needle = [op::NONE, op::TUPLE, op::BINPERSID];
            let at = main.windows(3).position(|w| w == needle).unwrap();
            [&main[..at], &main[at + 1..]].concat()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zipped.pth");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let stored =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("zipped/data.pkl", stored).unwrap();
        zip.write_all(&main).unwrap();
        zip.start_file("zipped/byteorder", stored).unwrap();
        zip.write_all(b"little").unwrap();
        zip.start_file("zipped/data/0", stored).unwrap();
        // 1.0, -2.0 and the smallest subnormal, as float16.
        for half in [0x3c00u16, 0xc000, 0x0001] {
            zip.write_all(&half.to_le_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let tensors = read_state_dict(&path).unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors[0].name, "conv.weight");
        assert_eq!(tensors[0].data, vec![1.0, -2.0, 2f32.powi(-24)]);
    }

    #[test]
    fn half_and_bfloat_conversions_are_exact() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x8000).is_sign_negative());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(DType::BF16.to_f32(&[0x80, 0x3f]), 1.0);
        assert_eq!(DType::F64.to_f32(&0.5f64.to_le_bytes()), 0.5);
    }

    #[test]
    fn gather_handles_permuted_and_offset_views() {
        let source: Vec<f32> = (0..24).map(|v| v as f32).collect();
        // A [2, 3, 4] tensor permuted to [4, 2, 3] (strides 1, 12, 4), starting at 0.
        let plan = Plan {
            name: "p".into(),
            key: "k".into(),
            start: 0,
            dims: vec![(4, 1), (2, 12), (3, 4)],
            shape: vec![4, 2, 3],
            numel: 24,
        };
        let out = gather(&source, &plan).unwrap();
        assert_eq!(&out[..7], &[0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0]);
        let plan = Plan {
            start: 5,
            dims: vec![(3, 1)],
            shape: vec![3],
            numel: 3,
            ..plan
        };
        assert!(plan.is_contiguous());
        assert_eq!(gather(&source, &plan).unwrap(), vec![5.0, 6.0, 7.0]);
    }
}
