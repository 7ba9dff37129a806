//! The log ceiling with traces exported and JSON logs (see ceiling/).

mod ceiling;

#[test]
fn json_logs_with_exported_traces_keep_the_filters_level_as_the_ceiling() {
    ceiling::assert_ceiling_is_info(true);
}
