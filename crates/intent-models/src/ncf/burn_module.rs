//! NCF as a burn module, so that the shared training engine can run it on any burn backend
//! (`--device cuda`). The parameters are those of the host model [`Ncf`], under the same names,
//! and [`NcfModule::from_host`] / [`NcfModule::to_host`] convert both ways: a model trained here
//! is saved, served and evaluated by the host code.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::ncf::{Dense, Ncf, NcfArchitecture};

/// GMF, MLP or NeuMF (see [`crate::ncf`]) as a burn module.
#[derive(Module, Debug)]
pub struct NcfModule<B: Backend> {
    /// GMF user factors `[users, factors]` (GMF and NeuMF).
    pub gmf_user: Option<Param<Tensor<B, 2>>>,
    /// GMF item factors `[items, factors]`.
    pub gmf_item: Option<Param<Tensor<B, 2>>>,
    /// MLP user embeddings `[users, layers[0] / 2]` (MLP and NeuMF).
    pub mlp_user: Option<Param<Tensor<B, 2>>>,
    /// MLP item embeddings `[items, layers[0] / 2]`.
    pub mlp_item: Option<Param<Tensor<B, 2>>>,
    /// The tower (ReLU after each layer).
    pub tower: Vec<Linear<B>>,
    /// The output layer (one logit).
    pub out: Linear<B>,
}

fn table<B: Backend>(values: &[f32], rows: usize, device: &B::Device) -> Option<Param<Tensor<B, 2>>> {
    (!values.is_empty()).then(|| {
        let cols = values.len() / rows.max(1);
        Param::initialized(
            ParamId::new(),
            Tensor::from_data(TensorData::new(values.to_vec(), [rows, cols]), device).require_grad(),
        )
    })
}

fn linear<B: Backend>(d: &Dense, device: &B::Device) -> Linear<B> {
    let mut layer = LinearConfig::new(d.inp, d.out).init::<B>(device);
    // The host keeps PyTorch's `[out, in]`; burn's `Linear` holds `[in, out]`.
    let w = Tensor::<B, 2>::from_data(TensorData::new(d.weight.clone(), [d.out, d.inp]), device).transpose();
    layer.weight = Param::initialized(layer.weight.id, w.require_grad());
    let b = Tensor::<B, 1>::from_data(TensorData::new(d.bias.clone(), [d.out]), device);
    layer.bias = layer.bias.map(|p| Param::initialized(p.id, b.require_grad()));
    layer
}

fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 after convert")
}

fn dense<B: Backend>(l: &Linear<B>) -> Dense {
    let [inp, out] = l.weight.dims();
    let weight = host_values(l.weight.val().transpose());
    let bias = l.bias.as_ref().map(|b| host_values(b.val())).unwrap_or_else(|| vec![0.0; out]);
    Dense { inp, out, weight, bias }
}

impl<B: Backend> NcfModule<B> {
    /// The host model's weights on `device`.
    pub fn from_host(m: &Ncf, device: &B::Device) -> Self {
        let (users, items) = (m.arch.num_users, m.arch.num_items);
        NcfModule {
            gmf_user: table(&m.gmf_user, users, device),
            gmf_item: table(&m.gmf_item, items, device),
            mlp_user: table(&m.mlp_user, users, device),
            mlp_item: table(&m.mlp_item, items, device),
            tower: m.tower.iter().map(|d| linear(d, device)).collect(),
            out: linear(&m.out, device),
        }
    }

    /// The weights back on the host, as the model of `arch` (the architecture this module was
    /// made from).
    pub fn to_host(&self, arch: &NcfArchitecture) -> Ncf {
        let values =
            |p: &Option<Param<Tensor<B, 2>>>| p.as_ref().map(|p| host_values(p.val())).unwrap_or_default();
        Ncf {
            arch: arch.clone(),
            gmf_user: values(&self.gmf_user),
            gmf_item: values(&self.gmf_item),
            mlp_user: values(&self.mlp_user),
            mlp_item: values(&self.mlp_item),
            tower: self.tower.iter().map(dense).collect(),
            out: dense(&self.out),
        }
    }

    /// Logits `[n]` of the pairs `(users[k], items[k])` (indices).
    pub fn forward(&self, users: Tensor<B, 1, Int>, items: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let mut head = Vec::with_capacity(2);
        if let (Some(p), Some(q)) = (&self.gmf_user, &self.gmf_item) {
            head.push(p.val().select(0, users.clone()) * q.val().select(0, items.clone()));
        }
        if let (Some(p), Some(q)) = (&self.mlp_user, &self.mlp_item) {
            let mut x = Tensor::cat(vec![p.val().select(0, users), q.val().select(0, items)], 1);
            for layer in &self.tower {
                x = relu(layer.forward(x));
            }
            head.push(x);
        }
        let head = if head.len() == 1 { head.pop().expect("one part") } else { Tensor::cat(head, 1) };
        self.out.forward(head).squeeze_dim::<1>(1)
    }
}

/// Indices as an `Int` tensor `[n]` on `device`.
pub fn index_tensor<B: Backend>(v: &[u32], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(), [v.len()]), device)
}

/// Mean binary cross-entropy of `logits` against `labels` (0 or 1), in the stable form PyTorch's
/// `BCEWithLogitsLoss` uses: `max(z, 0) − z·y + ln(1 + e^{−|z|})`.
pub fn bce_with_logits<B: Backend>(logits: Tensor<B, 1>, labels: Tensor<B, 1>) -> Tensor<B, 1> {
    let soft = logits.clone().abs().neg().exp().log1p();
    (logits.clone().clamp_min(0.0) - logits * labels + soft).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncf::NcfKind;
    use burn::backend::Flex;

    #[test]
    fn round_trips_and_scores_as_the_host_model() {
        let device = Default::default();
        for kind in [NcfKind::Gmf, NcfKind::Mlp, NcfKind::Neumf] {
            let arch =
                NcfArchitecture { kind, num_users: 5, num_items: 7, factors: 3, layers: vec![8, 4, 2] };
            let mut host = Ncf::init(arch.clone(), 3).unwrap();
            // Larger weights than the initialisation, so that the scores differ visibly.
            for (k, x) in host.gmf_user.iter_mut().chain(host.mlp_item.iter_mut()).enumerate() {
                *x = (k % 5) as f32 * 0.3 - 0.6;
            }
            let module = NcfModule::<Flex>::from_host(&host, &device);
            assert_eq!(module.to_host(&arch), host, "{kind:?}: host → module → host");
            let (users, items) = (vec![0u32, 4, 2, 2, 1], vec![6u32, 0, 3, 5, 1]);
            let want = host.score(&users, &items);
            let got =
                host_values(module.forward(index_tensor(&users, &device), index_tensor(&items, &device)));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{kind:?}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn bce_matches_hand_computation() {
        let device = Default::default();
        let z = Tensor::<Flex, 1>::from_floats([2.0, -1.0, 0.0, 30.0], &device);
        let y = Tensor::<Flex, 1>::from_floats([1.0, 1.0, 0.0, 0.0], &device);
        // ln(1+e^-2), ln(1+e^1), ln 2, 30 + ln(1+e^-30)
        let want = ((1.0 + (-2.0f64).exp()).ln() + (1.0 + 1f64.exp()).ln() + 2f64.ln() + 30.0) / 4.0;
        let got = host_values(bce_with_logits(z, y))[0] as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
