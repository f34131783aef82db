#include "format/hf_config.h"
