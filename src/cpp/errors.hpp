// Error types of the native core; bindings.cpp maps them to the Python
// classes pyweightvc.EncoderError / DecoderError. Bad arguments throw
// std::invalid_argument (Python ValueError).
#pragma once

#include <stdexcept>
#include <string>

namespace wvc {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct EncoderError : Error {
    using Error::Error;
};

struct DecoderError : Error {
    using Error::Error;
};

}  // namespace wvc
