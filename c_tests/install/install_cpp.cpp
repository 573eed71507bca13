// install_cpp.cpp: a C++17 program built against an installed c_embed_runtime,
// with only `pkg-config --cflags --libs c_embed_runtime` (see `make test-install`).
//
//   install_cpp MODEL.onnx
//
// Wraps the C handle in a std::unique_ptr with a custom deleter, embeds with the
// generated tiny model and prints "install_cpp: ok ...".
#include <c_embed_runtime.h>

#include "../contract_errors.h" /* the test's expected strings, not a build flag */

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Destroy {
    void operator()(void *handle) const noexcept { c_embed_runtime_destroy(handle); }
};
using Handle = std::unique_ptr<void, Destroy>;

class Embedder {
public:
    Embedder(const std::string &model, std::int64_t seq_len, std::int32_t out_dim)
        : handle_(c_embed_runtime_create(model.c_str(), "CPU", seq_len, out_dim, 1, 0))
    {
        if (!handle_) {
            throw std::runtime_error(c_embed_runtime_last_create_error());
        }
        seq_len_ = c_embed_runtime_seq_len(handle_.get());
        out_dim_ = c_embed_runtime_output_dim(handle_.get());
    }

    std::vector<float> embed(const std::vector<std::int64_t> &tokens) const
    {
        std::vector<std::int64_t> ids(static_cast<std::size_t>(seq_len_), 0);
        std::vector<std::int64_t> mask(ids.size(), 0);
        for (std::size_t i = 0; i < tokens.size() && i < ids.size(); i++) {
            ids[i] = tokens[i];
            mask[i] = 1;
        }
        std::vector<float> out(static_cast<std::size_t>(out_dim_));
        if (!c_embed_runtime_embed(handle_.get(), ids.data(), mask.data(), nullptr, out.data())) {
            throw std::runtime_error(c_embed_runtime_last_error(handle_.get()));
        }
        return out;
    }

    const char *device() const { return c_embed_runtime_selected_device(handle_.get()); }

private:
    Handle handle_;
    std::int64_t seq_len_ = 0;
    std::int32_t out_dim_ = 0;
};

double dot(const std::vector<float> &a, const std::vector<float> &b)
{
    double sum = 0.0;
    for (std::size_t i = 0; i < a.size(); i++) {
        sum += static_cast<double>(a[i]) * b[i];
    }
    return sum;
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fputs("usage: install_cpp MODEL.onnx\n", stderr);
        return 2;
    }
    try {
        Embedder("/nonexistent/model.onnx", 16, 32);
        std::fputs("install_cpp: FAILED: a missing model did not throw\n", stderr);
        return 1;
    } catch (const std::runtime_error &e) {
        if (std::string(e.what()).rfind(STD_CREATE_ERROR, 0) != 0) {
            std::fprintf(stderr, "install_cpp: FAILED: unexpected create error %s\n", e.what());
            return 1;
        }
    }
    try {
        Embedder embedder(argv[1], 16, 24);
        auto a = embedder.embed({1, 5, 9, 2});
        auto b = embedder.embed({1, 5, 9, 2});
        auto c = embedder.embed({1, 7, 7, 3, 2});
        bool ok = a.size() == 24 && std::fabs(dot(a, a) - 1.0) < 1e-4 && a == b &&
                  dot(a, c) < 0.9999;
        try {
            embedder.embed({1, 100});
            ok = false;
        } catch (const std::runtime_error &e) {
            ok = ok && std::string(e.what()).rfind(ORT_ERROR, 0) == 0;
        }
        if (!ok) {
            std::fputs("install_cpp: FAILED: unexpected vectors or errors\n", stderr);
            return 1;
        }
        std::printf("install_cpp: ok device=%s dim=%zu cos=%.4f\n", embedder.device(), a.size(),
                    dot(a, c));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "install_cpp: %s\n", e.what());
        return 1;
    }
    return 0;
}
