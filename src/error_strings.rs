//! The contract's fixed error strings (abi.md) and the library's own: the origin
//! prefixes, the fixed reasons and the fixed parts of reasons that carry
//! details, the one place they are spelled.
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

        /// `whole`'s strings as C strings, for the ABI's static answers.
        pub mod c_whole {
            $(pub const $name: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
                concat!(contract_strings!(@prefix $origin), $text, "\0").as_bytes(),
            ) {
                Ok(text) => text,
                Err(_) => panic!("a contract string holds no NUL"),
            };)*
        }

        /// Every string by name, whole (what build.rs writes for the tests).
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), whole::$name)),*];
    };
    (@prefix prefix) => { "" };
    (@prefix part) => { "" };
    (@prefix answer) => { "" };
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

    /// What `last_error` and `cpu_fallback_detail` answer for an invalid handle.
    answer INVALID_HANDLE = "invalid_handle";
    /// What `selected_device` answers for an invalid handle.
    answer INVALID_DEVICE = "invalid";

    /// `model_path` is NULL or "".
    create MODEL_PATH_EMPTY = "model path is empty";
    /// A device string this library does not know.
    create UNSUPPORTED_DEVICE = "unsupported requested_device (expected AUTO|NPU|GPU|CUDA|CPU|OPENVINO_CPU)";

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

    /// `tokenizer_path` is NULL or "".
    create TOKENIZER_PATH_EMPTY = "tokenizer path is empty";
    /// A tokenizer.json that cannot be read; then ` <path>: <why>`.
    create CANNOT_LOAD_TOKENIZER = "cannot load tokenizer";
    /// No ONNX Runtime loaded; then `; tried <each candidate and why>`.
    create COULD_NOT_LOAD_ONNX_RUNTIME = "could not load ONNX Runtime";
    /// `texts` or `out_vec` of a text batch is NULL or misaligned.
    embed NULL_TEXT_ARRAYS = "texts and out_vec must be non-NULL, aligned arrays";
    /// A text call on a handle created without a tokenizer.
    embed NO_TOKENIZER = "no tokenizer: create the handle with c_embed_runtime_create_with_tokenizer";

    // Parts of reasons, without an origin: the tests put them together as the
    // library does (an origin's prefix first, then the part and its details).

    /// A device step whose provider the loaded ONNX Runtime lacks.
    part CUDA_UNAVAILABLE = "CUDAExecutionProvider unavailable";
    /// As CUDA_UNAVAILABLE, for OpenVINO.
    part OPENVINO_UNAVAILABLE = "OpenVINOExecutionProvider unavailable";
    /// The OpenVINO-GPU step while its gate variable is off.
    part OPENVINO_GPU_FALLBACK_DISABLED = "OpenVINO GPU fallback disabled";
    /// Between the reasons of a device's failed steps.
    part DEVICE_REASON_SEPARATOR = " | ";
    /// The contract's embed error for an input it cannot fill; at create, the
    /// start of the message (so hosts matching it still do), then
    /// `: input '<name>' is <type> [<shape>], <why>`.
    part UNSUPPORTED_INPUT_TYPE = "unsupported_input_type";
    /// An input whose zeros for one row exceed the limit; then `: input ...`.
    part INPUT_TOO_LARGE = "input_too_large";
    /// A caller-fed input whose length per row is not seq_len; then `: input ...`.
    part INPUT_LENGTH_MISMATCH = "input_length_mismatch";
    /// After a text argument's name (`text`, `texts[<i>]`) that is NULL.
    part ARGUMENT_IS_NULL = " is NULL";
    /// After a text argument's name that is not UTF-8; then ` (invalid byte at offset <n>)`.
    part ARGUMENT_NOT_UTF8 = " is not valid UTF-8";

    /// An embed, in the child of a `fork()`, on a handle made before it.
    embed CREATED_BEFORE_FORK = "handle was created before fork(); create a new handle in the child";
    /// Strict mode saw a CPU-fallback signal; then `:<detail>` when it has one.
    embed NPU_CPU_FALLBACK_DETECTED = "npu_cpu_fallback_detected";
    /// A batch's helper thread went away before it answered.
    embed HELPER_LOST = "helper_lost";
    /// The model's output is not a tensor.
    embed OUTPUT_NOT_TENSOR = "output_not_tensor";
    /// The output's first dimension is not the batch's rows.
    embed BATCH_OUTPUT_MISMATCH = "batch_output_mismatch";
    /// A call whose model run was stopped by a destroy of its handle.
    embed HANDLE_DESTROYED = "handle_destroyed: the handle was destroyed during the call";
    /// A model run stopped by the run-time limit (at create or embed); then
    /// `: the run was stopped after <ms> ms (...)`.
    part RUN_TIME_LIMIT = "run_time_limit";
    /// After `model path is <a FIFO, a directory, a device...>`; then `: <path>`.
    part NOT_A_REGULAR_FILE = " (not a regular file)";
    /// The drop-in source (`c_embed_runtime.cpp`) found no library to forward
    /// to; then ` <path> (<where the path came from>): <why>`.
    create COULD_NOT_LOAD_LIBRARY = "could not load libc_embed_runtime";
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
            ("INVALID_HANDLE", "invalid_handle"),
            ("INVALID_DEVICE", "invalid"),
            ("MODEL_PATH_EMPTY", "std_create_error:model path is empty"),
            (
                "UNSUPPORTED_DEVICE",
                "std_create_error:unsupported requested_device (expected AUTO|NPU|GPU|CUDA|CPU|OPENVINO_CPU)",
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
            (
                "TOKENIZER_PATH_EMPTY",
                "std_create_error:tokenizer path is empty",
            ),
            (
                "CANNOT_LOAD_TOKENIZER",
                "std_create_error:cannot load tokenizer",
            ),
            (
                "COULD_NOT_LOAD_ONNX_RUNTIME",
                "std_create_error:could not load ONNX Runtime",
            ),
            (
                "NULL_TEXT_ARRAYS",
                "std_error:texts and out_vec must be non-NULL, aligned arrays",
            ),
            (
                "NO_TOKENIZER",
                "std_error:no tokenizer: create the handle with c_embed_runtime_create_with_tokenizer",
            ),
            ("CUDA_UNAVAILABLE", "CUDAExecutionProvider unavailable"),
            (
                "OPENVINO_UNAVAILABLE",
                "OpenVINOExecutionProvider unavailable",
            ),
            (
                "OPENVINO_GPU_FALLBACK_DISABLED",
                "OpenVINO GPU fallback disabled",
            ),
            ("DEVICE_REASON_SEPARATOR", " | "),
            ("UNSUPPORTED_INPUT_TYPE", "unsupported_input_type"),
            ("INPUT_TOO_LARGE", "input_too_large"),
            ("INPUT_LENGTH_MISMATCH", "input_length_mismatch"),
            ("ARGUMENT_IS_NULL", " is NULL"),
            ("ARGUMENT_NOT_UTF8", " is not valid UTF-8"),
            (
                "CREATED_BEFORE_FORK",
                "std_error:handle was created before fork(); create a new handle in the child",
            ),
            (
                "NPU_CPU_FALLBACK_DETECTED",
                "std_error:npu_cpu_fallback_detected",
            ),
            ("HELPER_LOST", "std_error:helper_lost"),
            ("OUTPUT_NOT_TENSOR", "std_error:output_not_tensor"),
            ("BATCH_OUTPUT_MISMATCH", "std_error:batch_output_mismatch"),
            (
                "HANDLE_DESTROYED",
                "std_error:handle_destroyed: the handle was destroyed during the call",
            ),
            ("RUN_TIME_LIMIT", "run_time_limit"),
            ("NOT_A_REGULAR_FILE", " (not a regular file)"),
            (
                "COULD_NOT_LOAD_LIBRARY",
                "std_create_error:could not load libc_embed_runtime",
            ),
        ];
        assert_eq!(ALL, expected);
        assert_eq!(MODEL_PATH_EMPTY, "model path is empty");
        assert_eq!(whole::INVALID_ROWS, "std_error:invalid_rows");
    }
}
