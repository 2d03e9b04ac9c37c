//! A validating reader for the GGUF container: header, metadata, tensor infos, and tensor data.
//!
//! The header is parsed here (not with candle's `gguf_file::Content`) so that every failure can name
//! what went wrong: a wrong magic, the byte where the file ends early, the tensor whose ggml type is
//! not supported. The block dequantization itself is candle's (`qtensor_from_ggml` + `dequantize`).
//!
//! Spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::Device;

use super::types::{candle_dtype, ggml_type_name, shortest_f64, Value, GGML_TYPES};
use super::GgufError;

/// Arrays and strings longer than this are rejected before allocating (same cap as llama.cpp).
const MAX_LEN: u64 = 1 << 30;
const MAX_DIMS: u32 = 4;
const DEFAULT_ALIGNMENT: u64 = 32;

/// Where one tensor lives and what it holds.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major shape (GGUF stores `ne` innermost-first; this is reversed, like candle and numpy).
    pub shape: Vec<usize>,
    /// The raw ggml type id.
    pub ggml_type: u32,
    /// Absolute byte offset of the data in the file.
    pub file_offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn type_name(&self) -> String {
        ggml_type_name(self.ggml_type)
    }
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed GGUF file: its metadata and tensor table, with every tensor's byte range checked to lie
/// inside the file and every tensor's type checked to be one this importer can dequantize.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

struct Cursor<'a> {
    r: BufReader<File>,
    path: &'a Path,
    pos: u64,
    size: u64,
    version: u32,
}

impl Cursor<'_> {
    fn truncated(&self, what: &str, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            offset: self.pos,
            needed,
            file_size: self.size,
        }
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufError> {
        if n > self.size.saturating_sub(self.pos) {
            return Err(self.truncated(what, n));
        }
        let mut buf = vec![0u8; n as usize];
        self.r
            .read_exact(&mut buf)
            .map_err(|source| GgufError::Read {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        if N as u64 > self.size.saturating_sub(self.pos) {
            return Err(self.truncated(what, N as u64));
        }
        self.r
            .read_exact(&mut buf)
            .map_err(|source| GgufError::Read {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A length or count: u32 in GGUF v1, u64 since v2.
    fn len(&mut self, what: &str) -> Result<u64, GgufError> {
        if self.version == 1 {
            Ok(self.u32(what)? as u64)
        } else {
            self.u64(what)
        }
    }

    fn malformed(&self, detail: String) -> GgufError {
        GgufError::Malformed {
            path: self.path.to_path_buf(),
            offset: self.pos,
            detail,
        }
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.len(what)?;
        if n > MAX_LEN {
            return Err(self.malformed(format!("{what} claims a length of {n} bytes")));
        }
        let mut bytes = self.bytes(n, what)?;
        // Strings are not NUL-terminated by the spec, but some writers add one.
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn value(&mut self, type_id: u32, what: &str, depth: usize) -> Result<Value, GgufError> {
        Ok(match type_id {
            0 => Value::U8(self.array::<1>(what)?[0]),
            1 => Value::I8(self.array::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            4 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            5 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.malformed(format!("{what} is a bool with byte value {b}"))),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                if depth > 8 {
                    return Err(self.malformed(format!("{what} nests arrays too deeply")));
                }
                let elem_type = self.u32(what)?;
                let n = self.len(what)?;
                let min_size: u64 = match elem_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 if self.version == 1 => 4,
                    8 | 10..=12 => 8,
                    _ => 12,
                };
                let needed = n.saturating_mul(min_size);
                if n > MAX_LEN || needed > self.size.saturating_sub(self.pos) {
                    return Err(self.truncated(what, needed));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem_type, what, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            11 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            t => return Err(self.malformed(format!("{what} has unknown value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Parse the header of `path` and check every tensor's type and byte range.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io = |source| GgufError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut magic = [0u8; 4];
        let got = read_up_to(&mut file, &mut magic).map_err(io)?;
        if got < 4 || &magic != b"GGUF" {
            return Err(GgufError::NotGguf {
                path: path.to_path_buf(),
                start: magic[..got].to_vec(),
            });
        }
        let mut c = Cursor {
            r: BufReader::with_capacity(1 << 20, file),
            path,
            pos: 4,
            size,
            version: 3,
        };
        let version = c.u32("the version number")?;
        if !(1..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
            });
        }
        c.version = version;
        let n_tensors = c.len("the tensor count")?;
        let n_kv = c.len("the metadata count")?;
        if n_tensors > MAX_LEN || n_kv > MAX_LEN {
            return Err(c.malformed(format!(
                "the header claims {n_tensors} tensors and {n_kv} metadata entries"
            )));
        }

        let mut metadata = HashMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}"))?;
            let what = format!("the value of metadata key `{key}`");
            let type_id = c.u32(&what)?;
            let value = c.value(type_id, &what, 0)?;
            metadata.insert(key, value);
        }

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut relative = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&format!("the name of tensor #{i}"))?;
            let what = format!("the info of tensor `{name}`");
            let n_dims = c.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(c.malformed(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let mut shape = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = c.len(&what)?;
                shape.push(
                    usize::try_from(d)
                        .map_err(|_| c.malformed(format!("tensor `{name}` has dimension {d}")))?,
                );
            }
            shape.reverse();
            let ggml_type = c.u32(&what)?;
            let offset = c.u64(&what)?;
            relative.push(offset);
            tensors.push(TensorInfo {
                name,
                shape,
                ggml_type,
                file_offset: 0,
                n_bytes: 0,
            });
        }

        let alignment = match metadata.get("general.alignment").and_then(Value::as_int) {
            Some(a) if a > 0 && a <= 1 << 20 => a as u64,
            Some(a) => return Err(c.malformed(format!("`general.alignment` is {a}"))),
            None => DEFAULT_ALIGNMENT,
        };
        let data_start = c.pos.div_ceil(alignment) * alignment;

        for (t, rel) in tensors.iter_mut().zip(relative) {
            let (block, type_size) = match (
                candle_dtype(t.ggml_type),
                GGML_TYPES.iter().find(|x| x.0 == t.ggml_type),
            ) {
                (Some(_), Some(&(_, _, b, s))) => (b, s),
                _ => {
                    return Err(GgufError::UnsupportedTensorType {
                        path: path.to_path_buf(),
                        tensor: t.name.clone(),
                        ggml_type: t.type_name(),
                    })
                }
            };
            let elems = t
                .shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n % block == 0)
                .ok_or_else(|| {
                    c.malformed(format!(
                        "tensor `{}` has shape {:?}, not a whole number of {} blocks of {block}",
                        t.name,
                        t.shape,
                        t.type_name()
                    ))
                })?;
            t.n_bytes = (elems / block * type_size) as u64;
            t.file_offset = data_start.saturating_add(rel);
            if t.file_offset.saturating_add(t.n_bytes) > size {
                return Err(GgufError::Truncated {
                    path: path.to_path_buf(),
                    what: format!("the data of tensor `{}`", t.name),
                    offset: t.file_offset,
                    needed: t.n_bytes,
                    file_size: size,
                });
            }
        }
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            by_name,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A metadata value, or `MissingKey`.
    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongKeyType {
            path: self.path.clone(),
            key: key.to_string(),
            expected,
            found: found.type_name(),
        }
    }

    /// A required non-negative integer.
    pub fn usize(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.get(key)?;
        v.as_int()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }

    /// An optional non-negative integer (absent → `None`, present with another type → error).
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, GgufError> {
        match self.metadata.contains_key(key) {
            true => self.usize(key).map(Some),
            false => Ok(None),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(shortest_f64(*v))),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a number", v)),
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64, GgufError> {
        self.opt_f64(key)?.ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "a bool", v)),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// An optional array of strings.
    pub fn opt_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.as_str()),
                    other => Err(self.wrong_type(key, "an array of strings", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.wrong_type(key, "an array of strings", v)),
        }
    }

    /// An optional array of numbers (integers or floats), as f64.
    pub fn opt_num_array(&self, key: &str) -> Result<Option<Vec<f64>>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| self.wrong_type(key, "an array of numbers", v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.wrong_type(key, "an array of numbers", v)),
        }
    }

    /// Read one tensor and dequantize it to float32 with candle, in row-major order.
    /// Returns the row-major shape and the values. No permutation is undone here.
    pub fn read_tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })?;
        let io = |source| GgufError::Read {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(info.file_offset)).map_err(io)?;
        // u64 backing keeps the bytes 8-aligned: candle views them as f32 / f16 / block slices.
        let n = info.n_bytes as usize;
        let mut backing = vec![0u64; n.div_ceil(8)];
        // SAFETY: `backing` owns at least `n` initialized bytes; u8 has no alignment requirement.
        let raw = unsafe { std::slice::from_raw_parts_mut(backing.as_mut_ptr().cast::<u8>(), n) };
        file.read_exact(raw).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => GgufError::Truncated {
                path: self.path.clone(),
                what: format!("the data of tensor `{name}`"),
                offset: info.file_offset,
                needed: info.n_bytes,
                file_size: file.metadata().map(|m| m.len()).unwrap_or(0),
            },
            _ => io(e),
        })?;
        let dtype =
            candle_dtype(info.ggml_type).ok_or_else(|| GgufError::UnsupportedTensorType {
                path: self.path.clone(),
                tensor: name.to_string(),
                ggml_type: info.type_name(),
            })?;
        let candle_err = |source: candle_core::Error| GgufError::Dequantize {
            tensor: name.to_string(),
            ggml_type: info.type_name(),
            source: Box::new(source),
        };
        let q =
            qtensor_from_ggml(dtype, raw, info.shape.clone(), &Device::Cpu).map_err(candle_err)?;
        drop(backing);
        let t = q.dequantize(&Device::Cpu).map_err(candle_err)?;
        drop(q);
        let values = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(candle_err)?;
        Ok((info.shape.clone(), values))
    }
}

/// Like `Read::read_exact`, but returns how many bytes were read when the file is shorter.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
