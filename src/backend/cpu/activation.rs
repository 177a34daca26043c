//! Element-wise activations and their derivatives, written in terms of the activation's
//! output so a backward pass needs only what the forward pass recorded.

use crate::backend::Real;
use crate::config::Activation;

/// `act(x)`.
pub(crate) fn apply<T: Real>(act: Activation, x: T) -> T {
    match act {
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(T::zero()),
        Activation::Linear => x,
        Activation::Sigmoid => T::one() / (T::one() + (-x).exp()),
    }
}

/// `act'(x)` given `y = act(x)`.
pub(crate) fn grad_from_output<T: Real>(act: Activation, y: T) -> T {
    match act {
        Activation::Tanh => T::one() - y * y,
        Activation::Relu => {
            if y > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::Linear => T::one(),
        Activation::Sigmoid => y * (T::one() - y),
    }
}

/// Softmax of `x` into `out` (max-subtracted, so large logits do not overflow).
pub(crate) fn softmax<T: Real>(x: &[T], out: &mut [T]) {
    let m = x.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
    let mut sum = T::zero();
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m).exp();
        sum = sum + *o;
    }
    for o in out.iter_mut() {
        *o = *o / sum;
    }
}
