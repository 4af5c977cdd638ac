#include "protocol/frame_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/message_writer.h"
#include "protocol/messages.h"

namespace pgtenant::protocol {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Feeds the stream a few bytes at a time, the way TCP may deliver it, and collects frames.
std::vector<std::pair<char, std::string>> DecodeInChunks(const std::string& stream, size_t chunk,
                                                         DecodeStatus* last) {
  std::vector<std::pair<char, std::string>> frames;
  std::string buffered;
  *last = DecodeStatus::kNeedMoreData;
  for (size_t off = 0; off < stream.size(); off += chunk) {
    buffered += stream.substr(off, chunk);
    while (true) {
      Frame f;
      *last = DecodeTyped(Bytes(buffered), 1 << 20, &f);
      if (*last != DecodeStatus::kFrame) break;
      frames.emplace_back(f.type, std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size()));
      buffered.erase(0, f.total_size);
    }
    if (*last == DecodeStatus::kMalformed) break;
  }
  return frames;
}

class FrameDecoderChunks : public ::testing::TestWithParam<size_t> {};

TEST_P(FrameDecoderChunks, SplitsABatchWhateverTheChunking) {
  std::string stream;
  AppendQuery(&stream, "select 1");
  AppendSync(&stream);
  AppendParse(&stream, "select $1");
  AppendTerminate(&stream);
  DecodeStatus last;
  auto frames = DecodeInChunks(stream, GetParam(), &last);
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].first, 'Q');
  EXPECT_EQ(frames[0].second, std::string("select 1") + '\0');
  EXPECT_EQ(frames[1].first, 'S');
  EXPECT_TRUE(frames[1].second.empty());
  EXPECT_EQ(frames[2].first, 'P');
  EXPECT_EQ(frames[3].first, 'X');
  EXPECT_EQ(last, DecodeStatus::kNeedMoreData);  // everything drained, nothing pending
}

INSTANTIATE_TEST_SUITE_P(Chunks, FrameDecoderChunks, ::testing::Values(1, 2, 3, 5, 7, 64, 4096));

TEST(FrameDecoder, NeedsMoreDataUntilTheWholeMessageIsThere) {
  std::string q;
  AppendQuery(&q, "select 42");
  Frame f;
  for (size_t n = 0; n < q.size(); ++n) {
    EXPECT_EQ(DecodeTyped(Bytes(q.substr(0, n)), 1024, &f), DecodeStatus::kNeedMoreData) << n;
  }
  ASSERT_EQ(DecodeTyped(Bytes(q), 1024, &f), DecodeStatus::kFrame);
  EXPECT_EQ(f.total_size, q.size());
}

TEST(FrameDecoder, LengthBelowFourIsMalformed) {
  std::string bad = {'Q', 0, 0, 0, 3};
  Frame f;
  EXPECT_EQ(DecodeTyped(Bytes(bad), 1024, &f), DecodeStatus::kMalformed);
}

TEST(FrameDecoder, OversizedLengthIsMalformedBeforeTheBytesArrive) {
  std::string huge = {'Q', static_cast<char>(0x80), 0, 0, 0};  // 2^31
  Frame f;
  EXPECT_EQ(DecodeTyped(Bytes(huge), 1 << 30, &f), DecodeStatus::kMalformed);
  std::string over = {'d', 0, 0x10, 0, 1};  // just over 1 MiB with a 1 MiB limit
  EXPECT_EQ(DecodeTyped(Bytes(over), 1 << 20, &f), DecodeStatus::kMalformed);
}

TEST(FrameDecoder, StartupPacketsAndTheirLimits) {
  std::string startup;
  AppendStartupMessage(&startup, {{"user", "app"}, {"database", "db"}});
  Frame f;
  for (size_t n = 0; n < startup.size(); ++n) {
    EXPECT_EQ(DecodeUntyped(Bytes(startup.substr(0, n)), kMaxStartupPacket, &f), DecodeStatus::kNeedMoreData);
  }
  ASSERT_EQ(DecodeUntyped(Bytes(startup), kMaxStartupPacket, &f), DecodeStatus::kFrame);
  auto parsed = ParseStartupPacket(f.payload);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->code, kProtocolVersion3);
  ASSERT_EQ(parsed->params.size(), 2u);
  EXPECT_EQ(parsed->params[0].first, "user");
  EXPECT_EQ(parsed->params[1].second, "db");

  std::string too_long = {0, 0, 0x30, 0};  // 12288 > 10000
  EXPECT_EQ(DecodeUntyped(Bytes(too_long), kMaxStartupPacket, &f), DecodeStatus::kMalformed);
  std::string too_short = {0, 0, 0, 4};
  EXPECT_EQ(DecodeUntyped(Bytes(too_short), kMaxStartupPacket, &f), DecodeStatus::kMalformed);
}

TEST(StartupPacket, RecognisesSslGssAndCancel) {
  std::string cancel;
  AppendCancelRequest(&cancel, 1234, -5);
  Frame f;
  ASSERT_EQ(DecodeUntyped(Bytes(cancel), kMaxStartupPacket, &f), DecodeStatus::kFrame);
  auto p = ParseStartupPacket(f.payload);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->code, kCancelRequestCode);
  EXPECT_EQ(p->cancel_pid, 1234);
  EXPECT_EQ(p->cancel_key, -5);

  std::string ssl;
  MessageWriter(&ssl).Begin(0).PutInt32(kSslRequestCode).Finish();
  ASSERT_EQ(DecodeUntyped(Bytes(ssl), kMaxStartupPacket, &f), DecodeStatus::kFrame);
  EXPECT_EQ(ParseStartupPacket(f.payload)->code, kSslRequestCode);
}

TEST(StartupPacket, RejectsBrokenParameterLists) {
  const std::vector<std::string> bad = {
      std::string("\x00\x03\x00\x00user\x00", 9),           // no value, no terminator
      std::string("\x00\x03\x00\x00user\x00app\x00", 13),   // no final NUL
      std::string("\x00\x02\x00\x00", 4),                   // protocol 2
      std::string("\x00\x03\x00\x00\x00junk", 9),           // bytes after the terminator
  };
  for (const auto& payload : bad) {
    EXPECT_FALSE(ParseStartupPacket(Bytes(payload)).ok()) << payload.size();
  }
}

TEST(ErrorFields, ParsesWhatAppendErrorWrites) {
  std::string e;
  AppendError(&e, "FATAL", "08P01", "bad things", "detail", "hint");
  Frame f;
  ASSERT_EQ(DecodeTyped(Bytes(e), 1024, &f), DecodeStatus::kFrame);
  EXPECT_EQ(f.type, 'E');
  ErrorFields fields = ParseErrorFields(f.payload);
  EXPECT_EQ(fields.severity, "FATAL");
  EXPECT_EQ(fields.sqlstate, "08P01");
  EXPECT_EQ(fields.message, "bad things");
}

}  // namespace
}  // namespace pgtenant::protocol
