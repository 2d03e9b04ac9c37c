//! GGUF metadata values and the ggml tensor type table.

use candle_core::quantized::GgmlDType;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// The GGUF type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "uint8",
            Value::I8(_) => "int8",
            Value::U16(_) => "uint16",
            Value::I16(_) => "int16",
            Value::U32(_) => "uint32",
            Value::I32(_) => "int32",
            Value::U64(_) => "uint64",
            Value::I64(_) => "int64",
            Value::F32(_) => "float32",
            Value::F64(_) => "float64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }

    /// The GGUF value type id (`gguf_type` in ggml): what the file stores before the value.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    /// Any integer type as i128 (wide enough for u64 and i64 alike).
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A float, or an integer read as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_int().map(|v| v as f64),
        }
    }
}

/// ggml tensor types: (id, name, elements per block, bytes per block). Sizes only matter for the
/// types candle dequantizes; the rest are listed so that errors can name them.
pub(super) const GGML_TYPES: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (4, "Q4_2", 0, 0),
    (5, "Q4_3", 0, 0),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 0, 0),
    (17, "IQ2_XS", 0, 0),
    (18, "IQ3_XXS", 0, 0),
    (19, "IQ1_S", 0, 0),
    (20, "IQ4_NL", 0, 0),
    (21, "IQ3_S", 0, 0),
    (22, "IQ2_S", 0, 0),
    (23, "IQ4_XS", 0, 0),
    (24, "I8", 0, 0),
    (25, "I16", 0, 0),
    (26, "I32", 0, 0),
    (27, "I64", 0, 0),
    (28, "F64", 0, 0),
    (29, "IQ1_M", 0, 0),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 0, 0),
    (35, "TQ2_0", 0, 0),
    (39, "MXFP4", 0, 0),
];

/// The ggml types this importer dequantizes (through candle).
pub const SUPPORTED_GGML_TYPES: &[&str] = &[
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
    "Q6_K",
];

/// The name llama.cpp gives a ggml type id (`"type 77"` for an id it does not know either).
pub fn ggml_type_name(id: u32) -> String {
    GGML_TYPES
        .iter()
        .find(|t| t.0 == id)
        .map(|t| t.1.to_string())
        .unwrap_or_else(|| format!("type {id}"))
}

pub(super) fn candle_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        30 => GgmlDType::BF16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        _ => return None,
    })
}

/// The ggml type id of a candle quantized dtype (the inverse of the table candle reads).
pub fn ggml_id(dtype: GgmlDType) -> u32 {
    GGML_TYPES
        .iter()
        .map(|t| t.0)
        .find(|&id| candle_dtype(id) == Some(dtype))
        .expect("every candle ggml dtype has an id in the table")
}

/// Elements per block and bytes per block of a candle quantized dtype.
pub fn block_layout(dtype: GgmlDType) -> (usize, usize) {
    let id = ggml_id(dtype);
    let t = GGML_TYPES.iter().find(|t| t.0 == id).expect("listed");
    (t.2, t.3)
}

/// The f64 whose decimal form is the shortest one that round-trips the f32: GGUF stores
/// `rms_norm_eps = 1e-5` as the f32 9.99999974738e-06; this gives back 1e-5.
pub fn shortest_f64(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(v as f64)
}
