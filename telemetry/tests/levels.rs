//! The log ceiling with traces exported and text logs (see ceiling/).

mod ceiling;

#[test]
fn exporting_traces_keeps_the_filters_level_as_the_ceiling() {
    ceiling::assert_ceiling_is_info(false);
}
