//! The contract's fixed error strings (abi.md): the origin prefixes and the
//! fixed reasons, the one place they are spelled.
//!
//! The library builds its messages from these. build.rs includes this file too
//! and writes every string, whole (prefix and reason), into
//! `c_tests/contract_errors.h`, which the C tests include and the Python tests
//! read (`python/tests/conftest.py`): no test suite spells them again. The unit
//! test below pins the values, so a change to the contract fails a test.

/// Defines each reason (`pub const NAME`), the same string with its origin's
/// prefix as the ABI returns it (`whole::NAME`), and [`ALL`].
macro_rules! contract_strings {
    ($($(#[doc = $doc:literal])* $origin:ident $name:ident = $text:literal;)*) => {
        $($(#[doc = $doc])* pub const $name: &str = $text;)*

        /// Each string as the ABI returns it: its origin's prefix, then the reason.
        pub mod whole {
            $(pub const $name: &str = concat!(contract_strings!(@prefix $origin), $text);)*
        }

        /// Every string by name, whole (what build.rs writes for the tests).
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), whole::$name)),*];
    };
    (@prefix prefix) => { "" };
    (@prefix create) => { "std_create_error:" };
    (@prefix embed) => { "std_error:" };
}

contract_strings! {
    /// A create failure raised by ONNX Runtime.
    prefix ORT_CREATE_ERROR = "ort_create_error:";
    /// A create failure found by the library's own checks.
    prefix STD_CREATE_ERROR = "std_create_error:";
    /// An embed failure raised by ONNX Runtime.
    prefix ORT_ERROR = "ort_error:";
    /// An embed failure found by the library's own checks.
    prefix STD_ERROR = "std_error:";
    /// A create failure of unknown origin (a caught panic).
    prefix UNKNOWN_CREATE_ERROR = "unknown_create_error";
    /// An embed failure of unknown origin (a caught panic).
    prefix UNKNOWN_EMBED_ERROR = "unknown_error";

    /// `model_path` is NULL or "".
    create MODEL_PATH_EMPTY = "model path is empty";
    /// A device string this library does not know.
    create UNSUPPORTED_DEVICE = "unsupported requested_device (expected AUTO|NPU|GPU|CUDA|CPU)";

    /// A batch's `rows` is below 1, or its arrays' sizes overflow.
    embed INVALID_ROWS = "invalid_rows";
    /// `input_ids` or `out_vec` is NULL or misaligned.
    embed NULL_ARRAYS = "input_ids and out_vec must be non-NULL, aligned arrays";
    /// A non-NULL `attention_mask` or `token_type_ids` is misaligned.
    embed MISALIGNED_OPTIONAL_ARRAYS = "attention_mask and token_type_ids must be NULL or aligned arrays";
    /// The model's output has no element to pool.
    embed EMPTY_OUTPUT = "empty_output";
    /// The model's output has a rank the pooling does not read.
    embed UNSUPPORTED_OUTPUT_RANK = "unsupported_output_rank";
    /// The output's token dimension is not a count.
    embed INVALID_TOKEN_DIM = "invalid_token_dim";
    /// The output's hidden dimension is below 1 or too large.
    embed INVALID_HIDDEN_DIM = "invalid_hidden_dim";
    /// A NaN or infinite value among the pooled ones.
    embed NON_FINITE_OUTPUT = "non_finite_output";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strings_are_the_contracts() {
        let expected = [
            ("ORT_CREATE_ERROR", "ort_create_error:"),
            ("STD_CREATE_ERROR", "std_create_error:"),
            ("ORT_ERROR", "ort_error:"),
            ("STD_ERROR", "std_error:"),
            ("UNKNOWN_CREATE_ERROR", "unknown_create_error"),
            ("UNKNOWN_EMBED_ERROR", "unknown_error"),
            ("MODEL_PATH_EMPTY", "std_create_error:model path is empty"),
            (
                "UNSUPPORTED_DEVICE",
                "std_create_error:unsupported requested_device (expected AUTO|NPU|GPU|CUDA|CPU)",
            ),
            ("INVALID_ROWS", "std_error:invalid_rows"),
            (
                "NULL_ARRAYS",
                "std_error:input_ids and out_vec must be non-NULL, aligned arrays",
            ),
            (
                "MISALIGNED_OPTIONAL_ARRAYS",
                "std_error:attention_mask and token_type_ids must be NULL or aligned arrays",
            ),
            ("EMPTY_OUTPUT", "std_error:empty_output"),
            (
                "UNSUPPORTED_OUTPUT_RANK",
                "std_error:unsupported_output_rank",
            ),
            ("INVALID_TOKEN_DIM", "std_error:invalid_token_dim"),
            ("INVALID_HIDDEN_DIM", "std_error:invalid_hidden_dim"),
            ("NON_FINITE_OUTPUT", "std_error:non_finite_output"),
        ];
        assert_eq!(ALL, expected);
        assert_eq!(MODEL_PATH_EMPTY, "model path is empty");
        assert_eq!(whole::INVALID_ROWS, "std_error:invalid_rows");
    }
}
