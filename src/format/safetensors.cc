#include "format/safetensors.h"
