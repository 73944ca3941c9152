#include <fsbi/sdk.hpp>
