/*
 * tensor_patch.h - overwrite bytes of one tensor inside a safetensors file,
 * to plant NaN, Inf or FP8 NaN bytes in otherwise valid checkpoints.
 */
#ifndef MTP_TESTS_TENSOR_PATCH_H
#define MTP_TESTS_TENSOR_PATCH_H

#include <stddef.h> /* defines: size_t */

/* Write N bytes at byte OFFSET of tensor NAME's data in the safetensors file
 * PATH. Fails the test (cmocka) when the file or the tensor is not there. */
void test_patch_tensor(const char *path, const char *name, size_t offset, const void *bytes,
                       size_t n);

/* The same with one float value at element INDEX of an F32 tensor. */
void test_patch_f32(const char *path, const char *name, size_t index, float value);

#endif
