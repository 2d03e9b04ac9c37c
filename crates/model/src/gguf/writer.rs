//! Writing GGUF v3 files as llama.cpp reads them: the header (metadata, then every tensor's name, ggml
//! shape, type and offset) computed up front from the declared tensors, then each tensor's bytes in order,
//! aligned to `general.alignment` — so a model is written one tensor at a time. Block formats come from
//! candle's quantizers ([`encode`]); this file owns only the container.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;

use super::types::{block_layout, ggml_id, Value};
use super::GgufError;

/// The alignment of tensor data (llama.cpp's `GGUF_DEFAULT_ALIGNMENT`), written as `general.alignment`.
pub const ALIGNMENT: u64 = 32;

/// One tensor to write: its name, its row-major shape (outermost first, as torch and safetensors give it)
/// and its type.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
}

impl TensorSpec {
    /// Bytes of the tensor's data in its type.
    pub fn bytes(&self) -> u64 {
        let (block, block_bytes) = block_layout(self.dtype);
        let n: usize = self.shape.iter().product();
        (n / block * block_bytes) as u64
    }
}

/// `values` (f32, any shape whose last dimension is a multiple of the type's block) in ggml type `dtype`.
pub fn encode(values: &Tensor, dtype: GgmlDType) -> Result<Vec<u8>, candle_core::Error> {
    Ok(QTensor::quantize(values, dtype)?.data()?.into_owned())
}

/// Whether `dtype` can hold a tensor whose rows have `cols` elements (ggml quantizes whole blocks of a row).
pub fn fits(dtype: GgmlDType, cols: usize) -> bool {
    cols.is_multiple_of(block_layout(dtype).0)
}

/// A GGUF file being written: create with every tensor declared, then [`GgufWriter::write`] each in order.
pub struct GgufWriter {
    path: PathBuf,
    out: BufWriter<File>,
    tensors: Vec<TensorSpec>,
    next: usize,
}

impl GgufWriter {
    /// Creates `path` and writes the header: `metadata` (in order; `general.alignment` is added) and the
    /// tensor infos of `tensors`.
    pub fn create(
        path: &Path,
        metadata: &[(String, Value)],
        tensors: Vec<TensorSpec>,
    ) -> Result<GgufWriter, GgufError> {
        let io = |source| GgufError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        let alignment = (
            "general.alignment".to_string(),
            Value::U32(ALIGNMENT as u32),
        );
        let with_alignment: Vec<&(String, Value)> = metadata
            .iter()
            .filter(|(k, _)| k != "general.alignment")
            .chain(std::iter::once(&alignment))
            .collect();
        head.extend_from_slice(&(with_alignment.len() as u64).to_le_bytes());
        for (key, value) in with_alignment {
            put_string(&mut head, key);
            head.extend_from_slice(&value.type_id().to_le_bytes());
            put_value(&mut head, value);
        }
        let mut offset = 0u64;
        for t in &tensors {
            put_string(&mut head, &t.name);
            head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            // ggml lists dimensions innermost first.
            for &d in t.shape.iter().rev() {
                head.extend_from_slice(&(d as u64).to_le_bytes());
            }
            head.extend_from_slice(&ggml_id(t.dtype).to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset += t.bytes().next_multiple_of(ALIGNMENT);
        }
        pad(&mut head);
        let mut out = BufWriter::with_capacity(1 << 22, File::create(path).map_err(io)?);
        out.write_all(&head).map_err(io)?;
        Ok(GgufWriter {
            path: path.to_path_buf(),
            out,
            tensors,
            next: 0,
        })
    }

    /// Writes the data of the next declared tensor, `name`, already encoded in its type.
    pub fn write(&mut self, name: &str, data: &[u8]) -> Result<(), GgufError> {
        let spec = self
            .tensors
            .get(self.next)
            .filter(|t| t.name == name)
            .ok_or_else(|| GgufError::Malformed {
                path: self.path.clone(),
                offset: 0,
                detail: format!("tensor `{name}` written out of the declared order"),
            })?;
        if data.len() as u64 != spec.bytes() {
            return Err(GgufError::TensorShape {
                path: self.path.clone(),
                tensor: name.to_string(),
                expected: format!("{} bytes", spec.bytes()),
                found: vec![data.len()],
            });
        }
        let padding = spec.bytes().next_multiple_of(ALIGNMENT) - spec.bytes();
        let io = |source| GgufError::Write {
            path: self.path.clone(),
            source,
        };
        self.out.write_all(data).map_err(io)?;
        self.out
            .write_all(&vec![0u8; padding as usize])
            .map_err(io)?;
        self.next += 1;
        Ok(())
    }

    /// Flushes and syncs the file; every declared tensor must have been written.
    pub fn finish(self) -> Result<(), GgufError> {
        if self.next != self.tensors.len() {
            return Err(GgufError::Malformed {
                path: self.path.clone(),
                offset: 0,
                detail: format!("{} of {} tensors written", self.next, self.tensors.len()),
            });
        }
        let path = self.path.clone();
        let io = |source| GgufError::Write { path, source };
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(|source| GgufError::Write {
            path: self.path,
            source,
        })
    }
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => buf.push(*v),
        Value::I8(v) => buf.push(*v as u8),
        Value::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::String(s) => put_string(buf, s),
        Value::Array(items) => {
            let elem = items.first().map_or(8, Value::type_id);
            buf.extend_from_slice(&elem.to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(buf, item);
            }
        }
    }
}

fn pad(buf: &mut Vec<u8>) {
    let len = (buf.len() as u64).next_multiple_of(ALIGNMENT) as usize;
    buf.resize(len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;
    use candle_core::Device;

    #[test]
    fn candles_quantizers_stay_within_each_formats_bound() {
        // A [4, 512] tensor with one outlier per row; each block's error is bounded by its largest value over
        // the format's levels (q8_0: ±127, q6_k: ±31, q5: ±15, q4: ±7; K-quants also round their block scales,
        // hence the margins).
        let values: Vec<f32> = (0..4 * 512)
            .map(|i| {
                let x = ((i as f32) * 0.618).sin() * ((i % 7) as f32 + 1.0);
                if i % 301 == 0 {
                    x * 20.0
                } else {
                    x
                }
            })
            .collect();
        let t = Tensor::from_vec(values.clone(), (4, 512), &Device::Cpu).unwrap();
        for (dtype, block, levels) in [
            (GgmlDType::Q8_0, 32, 127.0),
            (GgmlDType::Q5_0, 32, 15.0),
            (GgmlDType::Q5_1, 32, 15.0),
            (GgmlDType::Q4_0, 32, 7.0),
            (GgmlDType::Q6K, 256, 24.0),
            (GgmlDType::Q5K, 256, 12.0),
            (GgmlDType::Q4K, 256, 6.0),
        ] {
            let bytes = encode(&t, dtype).unwrap();
            assert_eq!(
                bytes.len(),
                (block_layout(dtype).1 * values.len() / block_layout(dtype).0)
            );
            let q = QTensor::quantize(&t, dtype).unwrap();
            let back: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (b, (want, got)) in values.chunks(block).zip(back.chunks(block)).enumerate() {
                let amax = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = want
                    .iter()
                    .zip(got)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= amax / levels,
                    "{dtype:?} block {b}: error {err} > {amax} / {levels}"
                );
            }
        }
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.gguf");
        let values: Vec<f32> = (0..2 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        let t = Tensor::from_vec(values.clone(), (2, 64), &Device::Cpu).unwrap();
        let specs = vec![
            TensorSpec {
                name: "a".into(),
                shape: vec![2, 64],
                dtype: GgmlDType::F32,
            },
            TensorSpec {
                name: "b".into(),
                shape: vec![2, 64],
                dtype: GgmlDType::Q8_0,
            },
        ];
        let metadata = vec![
            (
                "general.architecture".to_string(),
                Value::String("llama".into()),
            ),
            (
                "x.list".to_string(),
                Value::Array(vec![Value::I32(1), Value::I32(-2)]),
            ),
            ("x.flag".to_string(), Value::Bool(true)),
        ];
        let mut w = GgufWriter::create(&path, &metadata, specs).unwrap();
        w.write("a", &encode(&t, GgmlDType::F32).unwrap()).unwrap();
        assert!(w.write("a", &[0; 4]).is_err(), "out of order");
        w.write("b", &encode(&t, GgmlDType::Q8_0).unwrap()).unwrap();
        w.finish().unwrap();

        let file = GgufFile::open(&path).unwrap();
        assert_eq!(file.str("general.architecture").unwrap(), "llama");
        assert_eq!(file.usize("general.alignment").unwrap(), 32);
        assert_eq!(file.opt_bool("x.flag").unwrap(), Some(true));
        assert_eq!(file.opt_num_array("x.list").unwrap(), Some(vec![1.0, -2.0]));
        let (shape, a) = file.read_tensor_f32("a").unwrap();
        assert_eq!((shape, a), (vec![2, 64], values.clone()));
        let (_, b) = file.read_tensor_f32("b").unwrap();
        let bound = values.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (x, y) in values.iter().zip(&b) {
            assert!((x - y).abs() <= bound, "{x} vs {y}");
        }
    }
}
