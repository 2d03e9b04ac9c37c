//! Custom candle ops where the library wastes work we cannot afford in training. Each has a plain reference
//! built from candle ops beside it and a test of values and gradients against it.

pub mod frozen_matmul;
pub mod softmax;
