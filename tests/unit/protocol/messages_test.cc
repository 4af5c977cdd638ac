#include "protocol/messages.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/frame_decoder.h"
#include "protocol/message_writer.h"

namespace pgtenant::protocol {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(AppendBindForStatementTest, KeepsPortalParametersAndFormats) {
  std::string original;
  MessageWriter w(&original);
  w.Begin('B').PutCString("portal_1").PutCString("S_1").PutInt16(1).PutInt16(0);  // one text format
  w.PutInt16(2).PutInt32(4).PutBytes("t002").PutInt32(-1);                        // 't002', NULL
  w.PutInt16(1).PutInt16(1);                                                      // binary result
  w.Finish();
  Frame f;
  ASSERT_EQ(DecodeTyped(Bytes(original), 1 << 20, &f), DecodeStatus::kFrame);
  BindMessage bind;
  ASSERT_TRUE(ParseBindMessage(f.payload, &bind));

  std::string renamed;
  AppendBindForStatement(&renamed, f.payload, bind, "pgt_42");
  Frame g;
  ASSERT_EQ(DecodeTyped(Bytes(renamed), 1 << 20, &g), DecodeStatus::kFrame);
  EXPECT_EQ(g.total_size, renamed.size());
  BindMessage out;
  ASSERT_TRUE(ParseBindMessage(g.payload, &out));
  EXPECT_EQ(out.portal, "portal_1");
  EXPECT_EQ(out.statement, "pgt_42");
  ASSERT_EQ(out.params.size(), 2u);
  EXPECT_EQ(out.params[0], std::optional<std::string_view>("t002"));
  EXPECT_FALSE(out.params[1].has_value());
  EXPECT_EQ(out.param_formats, std::vector<int16_t>{0});
  EXPECT_EQ(out.result_formats, std::vector<int16_t>{1});
}

}  // namespace
}  // namespace pgtenant::protocol
