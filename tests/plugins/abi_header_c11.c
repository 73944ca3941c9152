/* Compiled as strict C11: the plugin ABI header must stay plain C. */
#include <fsbi/simulator_abi.h>

_Static_assert(sizeof(fsbi_message) == FSBI_MESSAGE_CAPACITY, "message is a fixed buffer");
_Static_assert(FSBI_ABI_VERSION == 1u, "ABI version");

int fsbi_abi_c11_check(void);
int fsbi_abi_c11_check(void) {
  fsbi_plugin_entry entry = {FSBI_ABI_VERSION, "c", "1", "a C plugin", 0, 0};
  return (int)entry.abi_version;
}
