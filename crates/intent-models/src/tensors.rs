//! Reading and writing plain host arrays as `model.safetensors` (through the `safetensors`
//! crate), for models that are not burn modules (the SVMs). Reads check each tensor's dtype and
//! shape and name the tensor and file in errors.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{ModelError, Result};

/// A named host array to write.
pub enum HostTensor {
    /// 32-bit floats.
    F32(Vec<f32>, Vec<usize>),
    /// 64-bit integers (indices, offsets).
    I64(Vec<i64>, Vec<usize>),
}

/// The tensor names in a safetensors file, read from its header alone (an 8-byte little-endian
/// length, then that many bytes of JSON), so that asking what a large checkpoint holds does not
/// read its data.
pub fn tensor_names(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| ModelError::invalid(path, format!("not a safetensors file: {e}")))?;
    let len = u64::from_le_bytes(len);
    let size = f.metadata().map_err(|e| ModelError::io(path, e))?.len();
    if len > size.saturating_sub(8) || len > 100 << 20 {
        return Err(ModelError::invalid(
            path,
            format!("not a safetensors file: header length {len} for a file of {size} bytes"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| ModelError::io(path, e))?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| ModelError::invalid(path, format!("not a safetensors header: {e}")))?;
    Ok(map.into_iter().map(|(k, _)| k).filter(|k| k != "__metadata__").collect())
}

/// Writes named arrays to a safetensors file.
pub fn write(path: &Path, tensors: Vec<(&str, HostTensor)>) -> Result<()> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, t)| match t {
            HostTensor::F32(v, shape) => {
                (name.to_string(), Dtype::F32, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
            HostTensor::I64(v, shape) => {
                (name.to_string(), Dtype::I64, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| ModelError::invalid(path, e.to_string()))?;
    let data = safetensors::serialize(views, None::<HashMap<String, String>>)
        .map_err(|e| ModelError::invalid(path, e.to_string()))?;
    std::fs::write(path, data).map_err(|e| ModelError::io(path, e))
}

/// A safetensors file read into memory.
pub struct TensorFile {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads the file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        SafeTensors::deserialize(&bytes)
            .map_err(|e| ModelError::invalid(path, format!("not a safetensors file: {e}")))?;
        Ok(TensorFile { path: path.to_path_buf(), bytes })
    }

    fn view(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<TensorView<'_>> {
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| ModelError::invalid(&self.path, e.to_string()))?;
        let t = st
            .tensor(name)
            .map_err(|_| ModelError::invalid(&self.path, format!("tensor '{name}' is missing")))?;
        if t.dtype() != dtype {
            return Err(ModelError::invalid(
                &self.path,
                format!("tensor '{name}' has dtype {:?}, expected {dtype:?}", t.dtype()),
            ));
        }
        if t.shape() != shape {
            return Err(ModelError::invalid(
                &self.path,
                format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.shape()),
            ));
        }
        Ok(t)
    }

    /// The shape of a tensor.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| ModelError::invalid(&self.path, e.to_string()))?;
        let t = st
            .tensor(name)
            .map_err(|_| ModelError::invalid(&self.path, format!("tensor '{name}' is missing")))?;
        Ok(t.shape().to_vec())
    }

    /// An `f32` tensor of the given shape.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.view(name, Dtype::F32, shape)?;
        Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    /// Whether the file holds a tensor of this name.
    pub fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes).is_ok_and(|st| st.tensor(name).is_ok())
    }

    /// A floating-point tensor of any dtype (f32, f16, bf16, f64: checkpoints from PyTorch) of
    /// the given shape, as `f32`.
    pub fn float(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| ModelError::invalid(&self.path, e.to_string()))?;
        let dtype = st
            .tensor(name)
            .map_err(|_| ModelError::invalid(&self.path, format!("tensor '{name}' is missing")))?
            .dtype();
        let t = self.view(name, dtype, shape)?;
        let d = t.data();
        Ok(match dtype {
            Dtype::F32 => {
                d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
            }
            Dtype::F64 => {
                d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
            }
            Dtype::F16 => {
                d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            Dtype::BF16 => {
                d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            other => {
                return Err(ModelError::invalid(
                    &self.path,
                    format!("tensor '{name}' has dtype {other:?}, expected a float type"),
                ))
            }
        })
    }

    /// An `i64` tensor of the given shape.
    pub fn i64(&self, name: &str, shape: &[usize]) -> Result<Vec<i64>> {
        let t = self.view(name, Dtype::I64, shape)?;
        Ok(t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    /// The file path (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn tensor_names_come_from_the_header_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        write(
            &p,
            vec![("b", HostTensor::F32(vec![1.0, 2.0], vec![2])), ("a", HostTensor::I64(vec![3], vec![1]))],
        )
        .unwrap();
        let mut names = tensor_names(&p).unwrap();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        std::fs::write(&p, b"short").unwrap();
        assert!(tensor_names(&p).unwrap_err().to_string().contains("not a safetensors file"));
        std::fs::write(&p, [255u8, 255, 255, 255, 0, 0, 0, 0, b'{', b'}']).unwrap();
        assert!(tensor_names(&p).unwrap_err().to_string().contains("header length"));
        assert!(tensor_names(&dir.path().join("absent")).is_err());
    }
}
