//! The input layer of a bag-of-words model kept on the host during CPU training, updated with
//! lazy AdamW rows.
//!
//! A batch of 64 utterances touches a few hundred of the vocabulary's rows of the input weight.
//! Held as a burn parameter, that weight still costs a dense gradient (`[vocab, width]` zeros
//! plus a scatter), two copies and a dense optimizer pass per step: most of a step on a CPU.
//! Here the weight lives in host memory: the rows a batch uses are gathered into a leaf tensor,
//! their gradient is read back after the backward pass, summed per row, and only those rows get
//! an AdamW update (with the step's bias correction and decoupled weight decay), as TensorFlow's
//! LazyAdam and PyTorch's SparseAdam do for embeddings. Rows absent from a batch keep their
//! values and moments. No maintained crate provides this for burn, hence this file.

use std::collections::HashMap;

use burn::prelude::*;

use crate::optim::AdamWParams;

/// Host copy of a `[rows, width]` input weight with its AdamW moments.
pub struct SparseInputTable {
    width: usize,
    values: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    params: AdamWParams,
    time: i32,
}

impl SparseInputTable {
    /// Takes the initial weight from a tensor.
    pub fn from_tensor<B: Backend>(weight: Tensor<B, 2>, params: AdamWParams) -> Self {
        let [_, width] = weight.dims();
        let values: Vec<f32> = weight.into_data().convert::<f32>().into_vec().expect("f32 after convert");
        let n = values.len();
        SparseInputTable { width, values, m: vec![0.0; n], v: vec![0.0; n], params, time: 0 }
    }

    /// Width of a row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows `cols` (with repetition), row-major `[cols.len(), width]`.
    pub fn gather(&self, cols: &[usize]) -> Vec<f32> {
        let w = self.width;
        let mut out = Vec::with_capacity(cols.len() * w);
        for &c in cols {
            out.extend_from_slice(&self.values[c * w..(c + 1) * w]);
        }
        out
    }

    /// Applies one lazy AdamW step: `grad` is `[cols.len(), width]`, the gradient of the gathered
    /// rows; rows gathered several times have their gradients summed first.
    pub fn apply(&mut self, lr: f32, cols: &[usize], grad: &[f32]) {
        self.time += 1;
        let w = self.width;
        let mut slot: HashMap<usize, usize> = HashMap::with_capacity(cols.len());
        let mut rows: Vec<usize> = Vec::new();
        let mut summed: Vec<f32> = Vec::new();
        for (k, &c) in cols.iter().enumerate() {
            let s = *slot.entry(c).or_insert_with(|| {
                rows.push(c);
                summed.resize(summed.len() + w, 0.0);
                rows.len() - 1
            });
            for (acc, g) in summed[s * w..(s + 1) * w].iter_mut().zip(&grad[k * w..(k + 1) * w]) {
                *acc += g;
            }
        }
        let AdamWParams { beta_1: b1, beta_2: b2, epsilon: eps, weight_decay: wd } = self.params;
        let bc1 = 1.0 - b1.powi(self.time);
        let inv_bc2_sqrt = 1.0 / (1.0 - b2.powi(self.time)).sqrt();
        let decay = 1.0 - lr * wd;
        let step = lr / bc1;
        for (s, &r) in rows.iter().enumerate() {
            let range = r * w..(r + 1) * w;
            let g = &summed[s * w..(s + 1) * w];
            let p = &mut self.values[range.clone()];
            let m = &mut self.m[range.clone()];
            let v = &mut self.v[range];
            for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p = *p * decay - step * *m / (v.sqrt() * inv_bc2_sqrt + eps);
            }
        }
    }

    /// The whole weight as a tensor.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let rows = self.values.len() / self.width;
        Tensor::from_data(TensorData::new(self.values.clone(), [rows, self.width]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn only_touched_rows_move_and_repeats_are_summed() {
        let w = Tensor::<Flex, 2>::from_floats([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], &Default::default());
        let mut t = SparseInputTable::from_tensor(
            w,
            AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.0 },
        );
        assert_eq!(t.gather(&[2, 0]), vec![3.0, 3.0, 1.0, 1.0]);
        // Row 0 twice (gradients 1 and 1 → 2), row 2 once with gradient −1; row 1 untouched.
        t.apply(0.1, &[0, 2, 0], &[1.0, 1.0, -1.0, -1.0, 1.0, 1.0]);
        let out: Vec<f32> = t.to_tensor::<Flex>(&Default::default()).into_data().to_vec().unwrap();
        // First Adam step moves each touched weight by lr·sign(g) (m̂/√v̂ = ±1).
        let expect = [0.9, 0.9, 2.0, 2.0, 3.1, 3.1];
        for (o, e) in out.iter().zip(expect) {
            assert!((o - e).abs() < 1e-5, "{out:?}");
        }
    }
}
