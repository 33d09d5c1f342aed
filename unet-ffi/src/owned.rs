//! [`OwnedModel`]: a [`Model`] together with the heap bytes it borrows (the convenience path:
//! libunet read the file). The one self-referential type of the crate.

use unet_core::{Error, Model};

/// Model bytes owned by libunet and the [`Model`] that borrows them.
///
/// The bytes live in a heap block reached through a raw pointer (not a `Box` field, whose
/// moves would assert uniqueness over memory the model still borrows), so moving an
/// `OwnedModel` never moves or invalidates them; they are freed in `Drop`, and the model never
/// escapes with a lifetime longer than a borrow of `self`.
pub(crate) struct OwnedModel {
    /// Borrows `*bytes`. `'static` is a lie told only inside this type: [`OwnedModel::model`]
    /// hands it out shortened to the borrow of `self`.
    model: Model<'static>,
    /// From `Box::<[u8]>::into_raw`; freed in `Drop`.
    bytes: *mut [u8],
}

// SAFETY: the bytes are never written after loading and are owned uniquely by this value;
// `Model` itself is `Send + Sync` (immutable views of those bytes).
unsafe impl Send for OwnedModel {}
// SAFETY: as above: all access after construction is read-only.
unsafe impl Sync for OwnedModel {}

impl OwnedModel {
    /// Takes ownership of `bytes` and validates them as a model file.
    pub(crate) fn new(bytes: Vec<u8>) -> Result<Self, Error> {
        let raw: *mut [u8] = Box::into_raw(bytes.into_boxed_slice());
        // SAFETY: `raw` comes from `Box::into_raw` just above, so it is valid for reads for as
        // long as it is not freed; it is freed only in `Drop` (or below on failure), after the
        // model that borrows it is gone, and is never written through.
        let view: &'static [u8] = unsafe { &*raw };
        match Model::from_safetensors(view) {
            Ok(model) => Ok(OwnedModel { model, bytes: raw }),
            Err(e) => {
                // SAFETY: the only borrow (`view`) ends with the failed parse; `raw` is from
                // `Box::into_raw` and freed exactly once here.
                drop(unsafe { Box::from_raw(raw) });
                Err(e)
            }
        }
    }

    /// The model, borrowed no longer than `self`.
    pub(crate) fn model(&self) -> &Model<'_> {
        &self.model
    }
}

impl Drop for OwnedModel {
    fn drop(&mut self) {
        // SAFETY: `bytes` came from `Box::into_raw` in `new` and is freed only here, once.
        // `model` still borrows the bytes but is never used again (its own drop is trivial:
        // `Model` is `Copy`).
        drop(unsafe { Box::from_raw(self.bytes) });
    }
}
