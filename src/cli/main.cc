#include <cstdio>
int main() { std::puts("inferd"); return 0; }
